"""The two small vocabularies every decision is written in: verdicts and actions.

`Action` is what a policy rule tells Weir to do with a finding; `Verdict` is
what one exchange (or one ext_authz check) came to, as the decision log and
the metrics record it. Both are `StrEnum`s, so a member equals its string
("block" == Action.BLOCK), renders as it in logs, labels and JSON, and code
that compares with plain strings keeps working.
"""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    """What a scanner rule does with a finding."""

    BLOCK = "block"  # refuse the prompt (403) or end the answer with an in-band error
    REDACT = "redact"  # replace the match with [REDACTED:<rule>]
    AUDIT = "audit"  # record the finding, change nothing


class Verdict(StrEnum):
    """What one exchange came to."""

    PENDING = "pending"  # not decided yet; a record is never published as pending
    ALLOW = "allow"  # let through (findings may still have been redacted or audited)
    DENY = "deny"  # refused by policy: identity, model, or a blocked prompt
    AUDIT = "audit"  # would have been denied; let through by `mode: audit`
    BLOCK = "block"  # the answer was blocked by a response rule
    ERROR = "error"  # Weir could not judge: bad input, unscannable bytes, a failure
