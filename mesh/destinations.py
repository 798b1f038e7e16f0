"""Where an LLM call may go: a workload's ``providers`` and ``upstreams`` allow-lists.

``providers`` names API families (``openai``: chat completions and responses,
and every server speaking them, vLLM, KServe, Ollama included; ``anthropic``:
messages). ``upstreams`` are globs on the request authority: a pattern without
``:`` matches the host with any port, one with ``:`` the whole authority; ``*``
is any run of characters. This module owns those patterns, their checks at
load and the one decision :func:`destination_refusal`, which the request
side calls for every LLM call, however it was recognised. Traffic that is not
an LLM call is never judged here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PROVIDER_FAMILIES = ("openai", "anthropic")
_AUTHORITY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-*:[]_")


def family_of(provider_name: str) -> str:
    """The family of an adapter's name (``openai.chat_completions`` -> ``openai``)."""
    return provider_name.split(".", 1)[0]


def upstream_pattern_problem(pattern: str) -> str | None:
    if not pattern:
        return "must not be empty"
    lowered = pattern.lower()
    for ch in lowered:
        if ch not in _AUTHORITY_CHARS:
            return f"character {ch!r} cannot appear in a request authority"
    if "**" in lowered:
        return "'**' is not a pattern; a single '*' already matches any run of characters"
    if lowered.count(":") > 1 and not lowered.startswith("["):
        return "more than one ':' outside an [IPv6] literal"
    return None


def provider_problem(name: str) -> str | None:
    if name not in PROVIDER_FAMILIES:
        return f"unknown provider '{name}'; expected one of {', '.join(PROVIDER_FAMILIES)}"
    return None


def _host(authority: str) -> str:
    if authority.startswith("["):
        end = authority.find("]")
        return authority[: end + 1] if end != -1 else authority
    return authority.rsplit(":", 1)[0] if ":" in authority else authority


@dataclass(frozen=True)
class UpstreamPattern:
    pattern: str
    _rx: re.Pattern[str] = field(init=False, repr=False, compare=False, hash=False)
    _with_port: bool = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        lowered = self.pattern.lower()
        body = ".*".join(re.escape(part) for part in lowered.split("*"))
        object.__setattr__(self, "_rx", re.compile(body, re.DOTALL))
        host_part = lowered[1:] if lowered.startswith("[") else lowered
        object.__setattr__(self, "_with_port", ":" in host_part.split("]")[-1])

    def matches(self, authority: str) -> bool:
        lowered = authority.lower()
        subject = lowered if self._with_port else _host(lowered)
        return self._rx.fullmatch(subject) is not None


@dataclass(frozen=True)
class Destinations:
    """A workload's allow-lists; None means that list does not restrict."""

    providers: tuple[str, ...] | None = None
    upstreams: tuple[UpstreamPattern, ...] | None = None

    @property
    def restricts(self) -> bool:
        return self.providers is not None or self.upstreams is not None


def destination_refusal(
    workload: str, destinations: Destinations, provider_name: str, authority: str
) -> str | None:
    """Why this LLM call may not go where it goes (a 403 reason naming the rule), or None."""
    if destinations.providers is not None:
        family = family_of(provider_name)
        if family not in destinations.providers:
            listed = ", ".join(destinations.providers)
            return (
                f"provider '{family}' is not in workload '{workload}' providers [{listed}]"
            )
    if destinations.upstreams is not None and not any(
        p.matches(authority) for p in destinations.upstreams
    ):
        listed = ", ".join(p.pattern for p in destinations.upstreams)
        shown = authority if _printable(authority) else "(unprintable)"
        return f"upstream '{shown}' is not in workload '{workload}' upstreams [{listed}]"
    return None


def _printable(authority: str) -> bool:
    return len(authority) <= 255 and all(ch.lower() in _AUTHORITY_CHARS for ch in authority)
