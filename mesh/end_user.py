"""The end user behind a call: a dimension of its own, beside the calling workload.

A workload rule may say which users it admits (``users``: ``group:NAME`` reads
the configured groups claim, ``sub:GLOB`` the subject) and whether a user is
required at all (``requireUser``). This module owns those patterns, their
checks at load, and the decision for one verified token. The decision names the
rule and the pattern list, never the user's claims; records carry the subject
only as a keyed hash (``extproc.audit.subject_hash``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mesh.jwt import VerifiedToken

GROUP, SUBJECT = "group", "sub"
_KINDS = (GROUP, SUBJECT)


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


@dataclass(frozen=True)
class UserPattern:
    """``group:NAME`` (an exact group, or a glob) or ``sub:GLOB``."""

    kind: str
    value: str
    _rx: re.Pattern[str] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_rx", _glob(self.value))

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"

    def admits(self, subject: str, groups: Sequence[str]) -> bool:
        if self.kind == SUBJECT:
            return self._rx.fullmatch(subject) is not None
        return any(self._rx.fullmatch(group) for group in groups)


def user_pattern_problem(text: str) -> str | None:
    """Why ``text`` is not a user pattern, or None."""
    kind, sep, value = text.partition(":")
    if not sep or kind not in _KINDS:
        return "must start with 'group:' or 'sub:'"
    if not value or value != value.strip():
        return f"needs a value after '{kind}:', without surrounding spaces"
    if "**" in value:
        return "'**' is not a pattern; a single '*' already matches any run of characters"
    return None


def parse_user_pattern(text: str) -> UserPattern:
    kind, _, value = text.partition(":")
    return UserPattern(kind, value)


def groups_of(claims: Mapping[str, Any], claim: str) -> tuple[str, ...]:
    """The groups claim as a list of strings: a JSON list, or one space-separated string."""
    value = claims.get(claim)
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list):
        return tuple(item for item in value if isinstance(item, str))
    return ()


@dataclass(frozen=True)
class UserDecision:
    """``status`` is 0 (allowed), 401 (a user is required) or 403 (not one of ``users``)."""

    status: int
    reason: str

    @property
    def allowed(self) -> bool:
        return self.status == 0


def decide_user(
    workload: str,
    users: tuple[UserPattern, ...] | None,
    require_user: bool,
    user: VerifiedToken | None,
    groups_claim: str,
) -> UserDecision:
    """May this (verified) user, or no user, call through rule ``workload``?"""
    if user is None:
        if require_user:
            return UserDecision(401, f"workload '{workload}' requires an end-user token")
        return UserDecision(0, "no end user")
    if users is None:
        return UserDecision(0, f"workload '{workload}' admits any end user")
    groups = groups_of(user.claims, groups_claim)
    for pattern in users:
        if pattern.admits(user.subject, groups):
            return UserDecision(0, f"end user admitted by workload '{workload}' ('{pattern}')")
    listed = ", ".join(str(p) for p in users)
    return UserDecision(403, f"end user is not in workload '{workload}' users [{listed}]")
