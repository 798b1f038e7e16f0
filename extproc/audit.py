"""Audit records: one per finding, carrying the rule, the span and a salted hash, never the text.

The hash lets an operator tell "the same secret again" from "a new one"
without the log ever holding the secret. It is an HMAC-SHA256 keyed with a
salt: `WEIR_AUDIT_SALT` when set (so that pods of one deployment agree),
otherwise a random per-process salt.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass

_SALT = os.environ.get("WEIR_AUDIT_SALT", "").encode() or secrets.token_bytes(32)


def match_hash(text: str) -> str:
    # hmac.digest is the one-shot C path: `weir scan` hashes millions of findings.
    digest = hmac.digest(_SALT, text.encode("utf-8", "surrogatepass"), "sha256")
    return "hmac-sha256:" + digest.hex()[:32]


@dataclass(frozen=True, slots=True)
class FindingRecord:
    """One finding as the audit log and the metrics see it."""

    direction: str  # request | response
    where: str  # the text part or stream channel, e.g. "messages[1].content" or "content/0"
    scanner: str
    rule: str
    action: str  # block | redact | audit
    start: int  # code-point span within `where`
    end: int
    match_hash: str
