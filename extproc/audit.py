"""Audit records: one per finding, carrying the rule, the span and a salted hash, never the text.

The hash lets an operator tell "the same secret again" from "a new one"
without the log ever holding the secret. It is an HMAC-SHA256 keyed with a
salt: `WEIR_AUDIT_SALT` when set (so that pods of one deployment agree),
otherwise a random per-process salt.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass

from mesh.verdicts import Action

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
    action: Action
    start: int  # code-point span within `where`
    end: int
    match_hash: str


def subject_hash(issuer: str | None, subject: str) -> str:
    """The end user as records show them: a keyed hash of issuer and subject, never the subject.

    The issuer is part of it, so one subject name at two identity providers stays two users.
    """
    text = f"user\0{issuer or ''}\0{subject}"
    digest = hmac.new(_SALT, text.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return "hmac-sha256:" + digest.hexdigest()[:32]
