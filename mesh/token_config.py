"""The policy's token settings: the `jwt` (end users) and `jwtSvid` (workloads) sections.

This module owns their schema and their checks at load, so that a policy that
`weir policy check` accepts cannot fail on them at run time:
- algorithms come from an allow-list of asymmetric ones (``none`` and HMAC are
  refused with the reason), and must fit the issuer's keys;
- a JWKS names exactly one of ``file`` and ``uri``; a file is read and parsed
  now (missing or invalid is a load error, with its path), a URI must be
  ``https://``, and its ``caFile``, when given, must be a readable PEM file;
- issuers are unique, audiences non-empty; ``header`` is a valid header name.
At run time the only remaining failure is a key source that stops answering:
its last good keys serve up to ``jwksMaxStaleSeconds``, then its tokens are
refused with a 503 (fail closed), see `mesh.jwks`.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from mesh.jwks import DEFAULT_MAX_STALE_SECONDS, DEFAULT_TTL_SECONDS, MAX_JWKS_BYTES
from mesh.jwt import (
    ALGORITHMS,
    DEFAULT_CLOCK_SKEW_SECONDS,
    KEY_TYPES,
    JwksError,
    JwksSource,
    TrustedIssuer,
    parse_jwks,
)

DEFAULT_USER_HEADER = "authorization"
DEFAULT_SVID_HEADER = "x-jwt-svid"
DEFAULT_GROUPS_CLAIM = "groups"
_HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")
# Headers Envoy owns or that carry the request line: a token cannot live there.
_RESERVED_HEADERS = frozenset({"host", "content-length", "content-type", "transfer-encoding"})

Fail = Callable[[str, str], Exception]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class JwksDoc(_Strict):
    file: str | None = None
    uri: str | None = None
    ca_file: str | None = Field(default=None, alias="caFile")
    timeout_seconds: float = Field(default=5.0, alias="timeoutSeconds", gt=0, le=60)


class IssuerDoc(_Strict):
    issuer: str
    audiences: list[str]
    jwks: JwksDoc
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])


class JwtDoc(_Strict):
    issuers: list[IssuerDoc]
    header: str = DEFAULT_USER_HEADER
    clock_skew_seconds: float = Field(
        default=DEFAULT_CLOCK_SKEW_SECONDS, alias="clockSkewSeconds", ge=0, le=600
    )
    groups_claim: str = Field(default=DEFAULT_GROUPS_CLAIM, alias="groupsClaim")
    jwks_cache_seconds: float = Field(
        default=DEFAULT_TTL_SECONDS, alias="jwksCacheSeconds", gt=0, le=86400
    )
    jwks_max_stale_seconds: float = Field(
        default=DEFAULT_MAX_STALE_SECONDS, alias="jwksMaxStaleSeconds", ge=0, le=7 * 86400
    )


class JwtSvidDoc(_Strict):
    header: str = DEFAULT_SVID_HEADER
    audiences: list[str]
    jwks: JwksDoc
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    clock_skew_seconds: float = Field(
        default=DEFAULT_CLOCK_SKEW_SECONDS, alias="clockSkewSeconds", ge=0, le=600
    )


@dataclass(frozen=True)
class UserTokens:
    """How end-user tokens are read and checked."""

    issuers: tuple[TrustedIssuer, ...]
    header: str
    clock_skew_seconds: float
    groups_claim: str
    jwks_cache_seconds: float
    jwks_max_stale_seconds: float


@dataclass(frozen=True)
class SvidTokens:
    """How JWT-SVIDs are read and checked: the trust domain's key set, any ``iss``."""

    issuer: TrustedIssuer
    header: str
    clock_skew_seconds: float


def build_user_tokens(doc: JwtDoc, fail: Fail, base: Path) -> UserTokens:
    header = _header(doc.header, "jwt.header", fail)
    if not doc.issuers:
        raise fail("jwt.issuers", "must list at least one issuer")
    issuers: list[TrustedIssuer] = []
    for i, issuer_doc in enumerate(doc.issuers):
        here = f"jwt.issuers[{i}]"
        name = issuer_doc.issuer
        if not name.strip() or name != name.strip():
            raise fail(f"{here}.issuer", "must be a non-empty string without surrounding spaces")
        if any(name == earlier.issuer for earlier in issuers):
            raise fail(f"{here}.issuer", f"issuer '{name}' is listed twice")
        issuers.append(
            TrustedIssuer(
                issuer=name,
                audiences=_audiences(issuer_doc.audiences, f"{here}.audiences", fail),
                jwks=_jwks(issuer_doc.jwks, f"{here}.jwks", fail, base),
                algorithms=_algorithms(issuer_doc.algorithms, f"{here}.algorithms", fail),
            )
        )
        _keys_fit(issuers[-1], f"{here}.algorithms", fail)
    claim = doc.groups_claim
    if not claim.strip():
        raise fail("jwt.groupsClaim", "must not be empty")
    return UserTokens(
        issuers=tuple(issuers),
        header=header,
        clock_skew_seconds=doc.clock_skew_seconds,
        groups_claim=claim,
        jwks_cache_seconds=doc.jwks_cache_seconds,
        jwks_max_stale_seconds=doc.jwks_max_stale_seconds,
    )


def build_svid_tokens(doc: JwtSvidDoc, fail: Fail, base: Path) -> SvidTokens:
    issuer = TrustedIssuer(
        issuer=None,
        audiences=_audiences(doc.audiences, "jwtSvid.audiences", fail),
        jwks=_jwks(doc.jwks, "jwtSvid.jwks", fail, base),
        algorithms=_algorithms(doc.algorithms, "jwtSvid.algorithms", fail),
    )
    _keys_fit(issuer, "jwtSvid.algorithms", fail)
    return SvidTokens(
        issuer=issuer,
        header=_header(doc.header, "jwtSvid.header", fail),
        clock_skew_seconds=doc.clock_skew_seconds,
    )


def _header(name: str, path: str, fail: Fail) -> str:
    lowered = name.lower()
    if not _HEADER_NAME.fullmatch(lowered) or lowered in _RESERVED_HEADERS:
        raise fail(path, f"'{name}' is not a usable HTTP header name")
    return lowered


def _audiences(audiences: list[str], path: str, fail: Fail) -> tuple[str, ...]:
    if not audiences:
        raise fail(path, "must list at least one audience")
    for j, audience in enumerate(audiences):
        if not audience.strip():
            raise fail(f"{path}[{j}]", "must not be empty")
    return tuple(audiences)


def _algorithms(algorithms: list[str], path: str, fail: Fail) -> tuple[str, ...]:
    if not algorithms:
        raise fail(path, "must list at least one algorithm")
    for j, alg in enumerate(algorithms):
        if alg == "none" or alg.upper().startswith("HS"):
            raise fail(
                f"{path}[{j}]",
                f"'{alg}' is not allowed: only asymmetric algorithms verify against a JWKS "
                f"({', '.join(ALGORITHMS)})",
            )
        if alg not in KEY_TYPES:
            expected = ", ".join(ALGORITHMS)
            raise fail(f"{path}[{j}]", f"unknown algorithm '{alg}'; expected one of {expected}")
        if alg in algorithms[:j]:
            raise fail(f"{path}[{j}]", f"algorithm '{alg}' is listed twice")
    return tuple(algorithms)


def _jwks(doc: JwksDoc, path: str, fail: Fail, base: Path) -> JwksSource:
    if (doc.file is None) == (doc.uri is None):
        raise fail(path, "needs exactly one of 'file' and 'uri'")
    if doc.uri is not None:
        if not doc.uri.startswith("https://") or len(doc.uri) <= len("https://"):
            raise fail(f"{path}.uri", "must be an https:// URL")
        ca_file = None
        if doc.ca_file is not None:
            ca_file = str(_resolve(doc.ca_file, base))
            try:
                ssl.create_default_context(cafile=ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise fail(f"{path}.caFile", f"cannot use CA file: {_why(exc)}") from None
        return JwksSource(uri=doc.uri, ca_file=ca_file, timeout_seconds=doc.timeout_seconds)
    assert doc.file is not None
    if doc.ca_file is not None:
        raise fail(f"{path}.caFile", "only a 'uri' JWKS takes a caFile")
    file = str(_resolve(doc.file, base))
    try:
        with open(file, "rb") as fh:
            data = fh.read(MAX_JWKS_BYTES + 1)
    except OSError as exc:
        raise fail(f"{path}.file", f"cannot read JWKS file: {_why(exc)}") from None
    if len(data) > MAX_JWKS_BYTES:
        raise fail(f"{path}.file", f"JWKS file larger than {MAX_JWKS_BYTES} bytes")
    try:
        keys = parse_jwks(data)
    except JwksError as exc:
        raise fail(f"{path}.file", f"invalid JWKS: {exc}") from None
    return JwksSource(file=file, timeout_seconds=doc.timeout_seconds, initial=keys)


def _keys_fit(issuer: TrustedIssuer, path: str, fail: Fail) -> None:
    """A file's keys are known now: at least one must fit an allowed algorithm."""
    keys = issuer.jwks.initial
    if keys is None:
        return
    kinds = {KEY_TYPES[alg] for alg in issuer.algorithms}
    if not any(key.kty in kinds for key in keys.keys.values()):
        raise fail(path, "no key in the JWKS file fits any of these algorithms")


def _resolve(name: str, base: Path) -> Path:
    # Relative paths are relative to the policy file, so a policy and its keys travel together.
    path = Path(os.path.expanduser(name))
    return path if path.is_absolute() else base / path


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__
