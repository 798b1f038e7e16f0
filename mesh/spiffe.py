"""SPIFFE IDs: the strict parser and the value type.

This module owns the one place where a string becomes a trusted workload
identity. It follows the SPIFFE ID specification (SPIFFE-ID.md, sections 2.1
to 2.3) by hand, character by character, with no URL library: URL parsers
normalise (case, percent-decoding, dot segments) and accept forms the spec
forbids, and any normalisation here would let two different strings name the
same identity. A string is either accepted exactly as written, so that
``str(parse_spiffe_id(s)) == s``, or rejected with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEME = "spiffe://"
MAX_ID_BYTES = 2048
MAX_TRUST_DOMAIN_BYTES = 255

_TRUST_DOMAIN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-_")
_PATH_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")


class SpiffeIdError(ValueError):
    """A string is not a valid SPIFFE ID; ``reason`` says why.

    The reason never quotes the whole input, because the input may come from
    an attacker-controlled header and end up in logs.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SpiffeId:
    """A parsed SPIFFE ID. Build it with ``parse_spiffe_id``, not directly."""

    trust_domain: str
    path: str  # "" or "/seg/seg..."; never a trailing slash

    def __str__(self) -> str:
        return f"{SCHEME}{self.trust_domain}{self.path}"

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.path.split("/")[1:]) if self.path else ()

    @property
    def namespace(self) -> str | None:
        """The ``<x>`` of an Istio path ``/ns/<x>/sa/<y>``, else None."""
        istio = self._istio_parts()
        return istio[0] if istio else None

    @property
    def service_account(self) -> str | None:
        """The ``<y>`` of an Istio path ``/ns/<x>/sa/<y>``, else None."""
        istio = self._istio_parts()
        return istio[1] if istio else None

    def _istio_parts(self) -> tuple[str, str] | None:
        segs = self.segments
        if len(segs) == 4 and segs[0] == "ns" and segs[2] == "sa":
            return segs[1], segs[3]
        return None


def parse_spiffe_id(value: str) -> SpiffeId:
    """Parse ``value`` strictly, or raise ``SpiffeIdError``."""
    if not isinstance(value, str):
        raise SpiffeIdError(f"expected a string, got {type(value).__name__}")
    if not value:
        raise SpiffeIdError("empty SPIFFE ID")
    if not value.isascii():
        raise SpiffeIdError("contains non-ASCII characters")
    # ASCII only from here, so len() counts bytes.
    if len(value) > MAX_ID_BYTES:
        raise SpiffeIdError(f"longer than {MAX_ID_BYTES} bytes")
    if not value.startswith(SCHEME):
        if value[: len(SCHEME)].lower() == SCHEME:
            raise SpiffeIdError("scheme must be lowercase 'spiffe://'")
        raise SpiffeIdError("scheme must be 'spiffe://'")

    rest = value[len(SCHEME) :]
    # These three are checked before splitting so that the reason names the
    # URI feature the caller tried to use, wherever it appears.
    if "?" in rest:
        raise SpiffeIdError("query ('?') not allowed")
    if "#" in rest:
        raise SpiffeIdError("fragment ('#') not allowed")
    if "%" in rest:
        raise SpiffeIdError("percent-encoding ('%') not allowed")

    slash = rest.find("/")
    trust_domain, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
    _check_trust_domain(trust_domain)
    _check_path(path)
    return SpiffeId(trust_domain=trust_domain, path=path)


def parse_spiffe_id_in(value: str, trust_domain: str) -> SpiffeId:
    """Parse ``value`` and also require it to belong to ``trust_domain``."""
    sid = parse_spiffe_id(value)
    if sid.trust_domain != trust_domain:
        raise SpiffeIdError(
            f"trust domain '{sid.trust_domain}' is not the local trust domain '{trust_domain}'"
        )
    return sid


def check_trust_domain(name: str) -> None:
    """Raise ``SpiffeIdError`` unless ``name`` is a valid trust domain name."""
    if not isinstance(name, str):
        raise SpiffeIdError(f"expected a string, got {type(name).__name__}")
    if not name.isascii():
        raise SpiffeIdError("contains non-ASCII characters")
    _check_trust_domain(name)


def _check_trust_domain(td: str) -> None:
    if not td:
        raise SpiffeIdError("trust domain is empty")
    if "@" in td:
        raise SpiffeIdError("userinfo ('@') not allowed")
    if ":" in td:
        raise SpiffeIdError("port (':') not allowed")
    if len(td) > MAX_TRUST_DOMAIN_BYTES:
        raise SpiffeIdError(f"trust domain longer than {MAX_TRUST_DOMAIN_BYTES} bytes")
    for ch in td:
        if ch not in _TRUST_DOMAIN_CHARS:
            if ch.isupper():
                raise SpiffeIdError("trust domain must be lowercase")
            raise SpiffeIdError(f"invalid character {ch!r} in trust domain")


def _check_path(path: str) -> None:
    if not path:
        return
    segments = path[1:].split("/")
    for index, seg in enumerate(segments):
        if not seg:
            if index == len(segments) - 1:
                raise SpiffeIdError("trailing '/' not allowed")
            raise SpiffeIdError("empty path segment")
        if seg in (".", ".."):
            raise SpiffeIdError(f"path segment {seg!r} not allowed")
        for ch in seg:
            if ch not in _PATH_CHARS:
                raise SpiffeIdError(f"invalid character {ch!r} in path")
