"""Known AI provider authorities: the built-in list, policy `aiHosts` globs, the matcher.

A request to one of these hosts is an AI call whatever its body says. When Weir
does not recognise its API (neither by path nor by an LLM-shaped body), the
request is refused with a JSON 404 unless the workload says ``unknownApis: allow``:
an AI API Weir cannot read must not be forwarded unscanned.

A host glob is a lower-case DNS name in which ``*`` stands for one or more
characters of a name, dots included (``*.openai.azure.com`` covers
``my-resource.openai.azure.com``). No scheme, port or path: the port of the
request's ``:authority`` is ignored when matching.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

# Well-known hosted LLM APIs. Self-hosted and gateway hosts go in the policy's `aiHosts`.
BUILTIN_AI_HOSTS: tuple[str, ...] = (
    "api.openai.com",
    "api.anthropic.com",
    "*.openai.azure.com",
    "*.services.ai.azure.com",
    "generativelanguage.googleapis.com",
    "*-aiplatform.googleapis.com",
    "aiplatform.googleapis.com",
    "bedrock-runtime.*.amazonaws.com",
    "bedrock-runtime-fips.*.amazonaws.com",
    "api.mistral.ai",
    "api.groq.com",
    "api.together.xyz",
    "api.together.ai",
    "api.cohere.com",
    "api.cohere.ai",
    "api.deepseek.com",
    "api.x.ai",
    "api.perplexity.ai",
    "api.fireworks.ai",
    "openrouter.ai",
)

_LABEL = re.compile(r"[a-z0-9*]([a-z0-9*-]*[a-z0-9*])?")
MAX_HOST_CHARS = 253


def host_glob_problem(pattern: str) -> str | None:
    """Why `pattern` is not a usable host glob, or None (for policy validation)."""
    if not pattern:
        return "must not be empty"
    if "://" in pattern:
        return "a host, not a URL: leave out the scheme"
    if "/" in pattern:
        return "a host, not a URL: leave out the path"
    if ":" in pattern:
        return "leave out the port: any port of the host matches"
    if pattern != pattern.lower():
        return "host names are matched in lower case; write the glob in lower case"
    if len(pattern) > MAX_HOST_CHARS:
        return f"longer than {MAX_HOST_CHARS} characters"
    if pattern.strip("*.") == "":
        return "matches every host; name the AI hosts"
    for label in pattern.split("."):
        if not label:
            return "empty label (a leading, trailing or doubled dot)"
        if not _LABEL.fullmatch(label):
            return f"label {label!r} is not a DNS label (letters, digits, '-', '*')"
    return None


def authority_host(authority: str) -> str:
    """The host of an ``:authority`` (or Host) value: lower case, no port, no final dot."""
    host = authority.strip().lower()
    if "@" in host:
        host = host.rsplit("@", 1)[1]  # userinfo has no place here, but never trust it
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end != -1 else host
    host = host.split(":", 1)[0]
    return host.rstrip(".")


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile("[a-z0-9.-]+".join(re.escape(part) for part in pattern.split("*")))


@dataclass(frozen=True)
class AiHosts:
    """The built-in AI hosts plus the policy's own globs, compiled once per policy load."""

    extra: tuple[str, ...] = ()
    _res: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        patterns: Iterable[str] = (*BUILTIN_AI_HOSTS, *self.extra)
        object.__setattr__(self, "_res", tuple(_compile(p) for p in patterns))

    def is_ai_host(self, authority: str) -> bool:
        host = authority_host(authority)
        return bool(host) and any(rx.fullmatch(host) for rx in self._res)
