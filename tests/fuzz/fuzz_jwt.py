"""Token and key-set parsing over arbitrary input.

- verify / peek: never raise; every input that is not a token signed by a trusted
  key is a TokenRejected whose reason is a short fixed sentence.
- parse_jwks: parses or raises JwksError, nothing else.
- bearer_token: never raises.
"""

from __future__ import annotations

import contextlib

from _inputs import text

from mesh.jwt import (
    JwksError,
    JwksSource,
    KeySet,
    TokenRejected,
    TrustedIssuer,
    bearer_token,
    parse_jwks,
    peek,
    verify,
)
from mesh.sandbox_idp import SandboxIdp

_IDP = SandboxIdp.create("https://idp.example.com")
_KEYS = parse_jwks(_IDP.jwks())
_ISSUERS = [
    TrustedIssuer(_IDP.issuer, ("weir",), JwksSource(file="jwks.json"), ("RS256", "ES256")),
    TrustedIssuer(None, ("weir",), JwksSource(file="svid.json"), ("ES256",)),
]

SEEDS = [
    _IDP.token(_IDP.claims("ana", "weir")).encode(),
    b"eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.",
    b"a.b.c",
    b'{"keys": [{"kty": "RSA", "kid": "k", "n": "AQAB", "e": "AQAB"}]}',
    b'{"keys": [{"kty": "EC", "kid": "k", "crv": "P-256", "x": "", "y": ""}]}',
    b"Bearer x.y.z",
]


class _Keys:
    def keys_for(self, source: JwksSource) -> KeySet | None:
        return _KEYS


def TestOneInput(data: bytes) -> None:
    value = text(data)
    result = verify(value, _ISSUERS, _Keys())
    if isinstance(result, TokenRejected):
        # Reasons are fixed sentences (an algorithm or claim name at most): too short
        # to carry a token, whatever the input was.
        assert len(result.reason) < 100, result.reason
        assert result.reason.isascii()
    else:
        # Only a token our key signed can verify; the fuzzer cannot forge RS256.
        assert value.count(".") == 2
    peek(value)
    bearer_token(value, "authorization")
    with contextlib.suppress(JwksError):
        parse_jwks(data)
