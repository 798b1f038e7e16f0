"""JWT validation: end-user tokens and JWT-SVIDs, checked against configured issuers.

This module owns the rule that turns a bearer token into a verified subject or
a named rejection. It is sans-I/O: the signing keys come from a ``KeyLookup``
(``mesh.jwks.JwksCache`` in the server, a plain mapping in unit tests), and
fetching them is someone else's job.

What it refuses, each with a short reason safe to show to the caller (the
token and its claims are never part of a reason):
- a token over 8 KiB, or one that is not three base64url segments of JSON;
- an algorithm outside the issuer's allow-list (which never comes from the
  token): ``none`` and every HMAC algorithm are not even accepted in a policy,
  so HS256 with the RSA public key as the secret cannot be tried;
- an issuer that is not configured, a token without ``kid``, a ``kid`` the
  issuer's key set does not hold (a key of another issuer is never looked at);
- a bad signature, a key whose type does not fit the algorithm;
- a missing or past ``exp``, a future ``nbf`` or ``iat`` (beyond the clock
  skew), an ``aud`` none of whose values is accepted, a missing ``sub``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import jwt as pyjwt
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
)

# Larger tokens are refused before any parsing: a header value is attacker input.
MAX_TOKEN_BYTES = 8 * 1024
DEFAULT_CLOCK_SKEW_SECONDS = 30

# Asymmetric algorithms only: a JWKS publishes public keys, and an HMAC "verified"
# with a public key is the algorithm-confusion attack.
KEY_TYPES: Mapping[str, str] = {
    "RS256": "RSA", "RS384": "RSA", "RS512": "RSA",
    "PS256": "RSA", "PS384": "RSA", "PS512": "RSA",
    "ES256": "EC", "ES384": "EC", "ES512": "EC",
    "EdDSA": "OKP",
}
ALGORITHMS = tuple(KEY_TYPES)


# `sig` in an IdP's JWKS; `jwt-svid` in a SPIFFE trust bundle (SPIRE's), which also holds
# `x509-svid` roots that are not for JWTs.
_SIGNING_USES = ("sig", "jwt-svid")


class JwksError(ValueError):
    """A key set that cannot be used; the reason never quotes key material."""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    kty: str
    alg: str | None  # the JWK's own `alg`, when it pins one
    key: Any  # a cryptography public key object

    def __reduce__(self) -> tuple[Any, ...]:
        # cryptography's key objects do not pickle, and a policy (with the keys of its
        # JWKS files) travels from the reload worker process: as DER, it does.
        der = self.key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        return (_signing_key_from_der, (self.kid, self.kty, self.alg, der))


def _signing_key_from_der(kid: str, kty: str, alg: str | None, der: bytes) -> SigningKey:
    return SigningKey(kid, kty, alg, load_der_public_key(der))


@dataclass(frozen=True)
class KeySet:
    keys: Mapping[str, SigningKey]

    def get(self, kid: str) -> SigningKey | None:
        return self.keys.get(kid)


def parse_jwks(data: bytes | str) -> KeySet:
    """A JWKS document (RFC 7517) of public signing keys; other keys are skipped."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise JwksError("not a JSON document") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksError("expected a JSON object with a 'keys' list")
    keys: dict[str, SigningKey] = {}
    for i, jwk in enumerate(document["keys"]):
        if not isinstance(jwk, dict):
            raise JwksError(f"keys[{i}] is not an object")
        kid, kty = jwk.get("kid"), jwk.get("kty")
        if jwk.get("use", "sig") not in _SIGNING_USES or kty not in ("RSA", "EC", "OKP"):
            continue  # encryption keys, X.509 roots and symmetric secrets never verify a JWT
        if not isinstance(kid, str) or not kid:
            raise JwksError(f"keys[{i}] has no 'kid'")
        if "d" in jwk:
            raise JwksError(f"keys[{i}] ('{kid}') is a private key; publish the public part")
        alg = jwk.get("alg")
        if alg is not None and alg not in KEY_TYPES:
            raise JwksError(f"keys[{i}] ('{kid}') has unsupported alg")
        try:
            key = pyjwt.PyJWK(jwk).key
        except Exception:
            # pyjwt's messages quote the JWK; say only which key and why in general.
            raise JwksError(f"keys[{i}] ('{kid}') is not a valid {kty} public key") from None
        if kid in keys:
            raise JwksError(f"keys[{i}]: kid '{kid}' appears twice")
        keys[kid] = SigningKey(kid=kid, kty=kty, alg=alg, key=key)
    if not keys:
        raise JwksError("no usable public signing keys")
    return KeySet(keys)


@dataclass(frozen=True)
class JwksSource:
    """Where an issuer's keys come from: a file or an HTTPS URI (exactly one)."""

    file: str | None = None
    uri: str | None = None
    ca_file: str | None = None  # extra trust for the URI's TLS server (e.g. a private CA)
    timeout_seconds: float = 5.0
    # The file's keys as read when the policy loaded; the cache starts from them.
    initial: KeySet | None = field(default=None, compare=False, hash=False, repr=False)

    @property
    def location(self) -> str:
        return self.uri or f"file:{self.file}"


@dataclass(frozen=True)
class TrustedIssuer:
    """One issuer whose tokens are accepted. ``issuer=None`` accepts any ``iss``
    (a JWT-SVID need not carry one); it is then the only issuer consulted."""

    issuer: str | None
    audiences: tuple[str, ...]
    jwks: JwksSource
    algorithms: tuple[str, ...]


class KeyLookup(Protocol):
    def keys_for(self, source: JwksSource) -> KeySet | None:
        """The usable keys of ``source`` now, or None when there are none (fail closed)."""
        ...


class LoadedKeys:
    """The keys a policy load read from JWKS files, and nothing else: no fetching, ever.

    The lookup of an exchange that runs without the server's shared cache (tests,
    benchmarks); a URI source has no keys here, so its tokens fail closed.
    """

    def keys_for(self, source: JwksSource) -> KeySet | None:
        return source.initial


@dataclass(frozen=True)
class VerifiedToken:
    """A token whose signature and claims checked out. ``claims`` stays in memory:
    never log it; the records carry a keyed hash of ``subject`` only."""

    issuer: str | None
    subject: str
    claims: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True)
class TokenRejected:
    """Why a token was refused. ``code`` is a short fixed word, for metric labels."""

    code: str
    reason: str
    unavailable: bool = False  # the keys could not be had: Weir's problem, a 503


@dataclass(frozen=True)
class TokenHeader:
    """What an unverified token says about itself: enough to pick (and fetch) a key."""

    alg: str
    kid: str | None
    issuer: str | None


def bearer_token(value: str | None, header: str) -> str | None:
    """The token in ``header``'s value: after ``Bearer`` for ``authorization``, else raw.

    An ``authorization`` value that is not JWT-shaped (three dot-separated segments)
    is an API key for the upstream, not a user token, and yields None.
    """
    if not value:
        return None
    token = value.strip()
    if header.lower() == "authorization":
        scheme, _, rest = token.partition(" ")
        if scheme.lower() != "bearer":
            return None
        token = rest.strip()
        if token.count(".") != 2:
            return None
    return token or None


def peek(token: str) -> TokenHeader | TokenRejected:
    """Read the header and ``iss`` of a token without verifying it (never trust the result)."""
    if len(token) > MAX_TOKEN_BYTES:
        return TokenRejected("too_large", f"token larger than {MAX_TOKEN_BYTES // 1024} KiB")
    # Read by hand: pyjwt's unverified decode costs several times more, and pyjwt parses
    # the token again, strictly, when it verifies it.
    segments = token.split(".")
    if len(segments) != 3:
        return TokenRejected("malformed", "token is not a well-formed JWT")
    try:
        header, payload = _segment(segments[0]), _segment(segments[1])
    except (ValueError, binascii.Error):
        return TokenRejected("malformed", "token is not a well-formed JWT")
    if not isinstance(header, dict) or not isinstance(payload, dict):
        return TokenRejected("malformed", "token is not a well-formed JWT")
    alg, kid, issuer = header.get("alg"), header.get("kid"), payload.get("iss")
    if not isinstance(alg, str):
        return TokenRejected("malformed", "token header has no 'alg'")
    return TokenHeader(
        alg=alg,
        kid=kid if isinstance(kid, str) else None,
        issuer=issuer if isinstance(issuer, str) else None,
    )


def _segment(segment: str) -> Any:
    raw = base64.b64decode(segment + "=" * (-len(segment) % 4), altchars=b"-_", validate=True)
    return json.loads(raw)


def issuer_for(header: TokenHeader, issuers: Sequence[TrustedIssuer]) -> TrustedIssuer | None:
    for trusted in issuers:
        if trusted.issuer is None or trusted.issuer == header.issuer:
            return trusted
    return None


def verify(
    token: str,
    issuers: Sequence[TrustedIssuer],
    keys: KeyLookup,
    *,
    leeway: float = DEFAULT_CLOCK_SKEW_SECONDS,
) -> VerifiedToken | TokenRejected:
    """Check one token against ``issuers``; a rejection names the first failed check."""
    header = peek(token)
    if isinstance(header, TokenRejected):
        return header
    trusted = issuer_for(header, issuers)
    if trusted is None:
        return TokenRejected("issuer", "token issuer is not trusted")
    if header.alg not in trusted.algorithms:
        # The allow-list decides; 'none' and HS* can never be on it.
        shown = header.alg if header.alg in KEY_TYPES or header.alg in _NAMED else "other"
        return TokenRejected("algorithm", f"token algorithm '{shown}' is not allowed")
    if header.kid is None:
        return TokenRejected("kid", "token header has no 'kid'")
    key_set = keys.keys_for(trusted.jwks)
    if key_set is None:
        return TokenRejected(
            "keys_unavailable", "the issuer's signing keys are unavailable", unavailable=True
        )
    key = key_set.get(header.kid)
    if key is None:
        return TokenRejected("kid", "token 'kid' is not a key of its issuer")
    if key.kty != KEY_TYPES.get(header.alg) or (key.alg is not None and key.alg != header.alg):
        return TokenRejected("algorithm", "token algorithm does not fit its key")
    try:
        claims = pyjwt.decode(
            token,
            key.key,
            algorithms=[header.alg],
            audience=list(trusted.audiences),
            issuer=trusted.issuer,
            leeway=leeway,
            options={"require": ["exp", "aud", "sub"], "verify_iat": True},
        )
    except pyjwt.PyJWTError as exc:
        return _rejection(exc)
    except Exception:
        return TokenRejected("malformed", "token could not be verified")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        return TokenRejected("claims", "token 'sub' is not a non-empty string")
    return VerifiedToken(issuer=trusted.issuer, subject=subject, claims=claims)


_NAMED = ("none", "HS256", "HS384", "HS512")


def _rejection(exc: Exception) -> TokenRejected:
    # Most specific first: several of these subclass one another.
    if isinstance(exc, pyjwt.ExpiredSignatureError):
        return TokenRejected("expired", "token has expired")
    if isinstance(exc, pyjwt.ImmatureSignatureError):
        return TokenRejected("not_yet_valid", "token is not yet valid (nbf or iat in the future)")
    if isinstance(exc, pyjwt.MissingRequiredClaimError):
        return TokenRejected("claims", f"token has no '{exc.claim}' claim")
    if isinstance(exc, pyjwt.InvalidAudienceError):
        return TokenRejected("audience", "token audience is not accepted")
    if isinstance(exc, pyjwt.InvalidIssuerError):
        return TokenRejected("issuer", "token issuer is not trusted")
    if isinstance(exc, pyjwt.InvalidSignatureError):
        return TokenRejected("signature", "token signature does not verify")
    if isinstance(exc, pyjwt.InvalidIssuedAtError):
        return TokenRejected("claims", "token 'iat' is not a number")
    if isinstance(exc, pyjwt.InvalidAlgorithmError):
        return TokenRejected("algorithm", "token algorithm is not allowed")
    if isinstance(exc, pyjwt.InvalidKeyError):
        return TokenRejected("algorithm", "token algorithm does not fit its key")
    if isinstance(exc, pyjwt.DecodeError):
        return TokenRejected("malformed", "token is not a well-formed JWT")
    return TokenRejected("claims", "token claims are invalid")
