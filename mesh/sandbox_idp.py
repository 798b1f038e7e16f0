"""A tiny identity provider for the sandbox, the tour and the tests: keys, a JWKS, tokens.

Like `mesh.certs`, it is not production code: a real deployment's tokens come
from its IdP (or SPIRE for JWT-SVIDs) and Weir only verifies them. It signs with
RSA (RS256) or EC P-256 (ES256) keys, publishes their public halves as a JWKS,
and mints tokens with any claims, so tests can also make the bad ones: expired,
``alg: none``, HS256 keyed with the RSA public key, an unknown ``kid``.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt as pyjwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa


@dataclass
class SigningKeyPair:
    kid: str
    alg: str
    private: Any
    public_pem: bytes = field(init=False)

    def __post_init__(self) -> None:
        self.public_pem = self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @classmethod
    def generate(cls, kid: str, alg: str = "RS256") -> SigningKeyPair:
        if alg == "ES256":
            return cls(kid, alg, ec.generate_private_key(ec.SECP256R1()))
        return cls(kid, alg, rsa.generate_private_key(public_exponent=65537, key_size=2048))

    def jwk(self) -> dict[str, Any]:
        algorithm = pyjwt.get_algorithm_by_name(self.alg)
        public = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**public, "kid": self.kid, "alg": self.alg, "use": "sig"}


@dataclass
class SandboxIdp:
    """An issuer with its keys; ``keys[0]`` signs unless told otherwise."""

    issuer: str
    keys: list[SigningKeyPair]

    @classmethod
    def create(cls, issuer: str, kid: str = "key-1", alg: str = "RS256") -> SandboxIdp:
        return cls(issuer, [SigningKeyPair.generate(kid, alg)])

    def jwks(self) -> bytes:
        return json.dumps({"keys": [key.jwk() for key in self.keys]}).encode()

    def rotate(self, kid: str) -> SigningKeyPair:
        """Add a new key (published next to the old ones) and return it."""
        key = SigningKeyPair.generate(kid, self.keys[0].alg)
        self.keys.append(key)
        return key

    def claims(
        self, subject: str, audience: str, lifetime: float = 300, **extra: Any
    ) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": self.issuer, "sub": subject, "aud": audience,
            "iat": now, "nbf": now, "exp": int(now + lifetime), **extra,
        }

    def token(
        self,
        claims: Mapping[str, Any],
        key: SigningKeyPair | None = None,
        kid: str | None = None,
    ) -> str:
        signer = key or self.keys[0]
        headers = {"kid": kid if kid is not None else signer.kid}
        return pyjwt.encode(dict(claims), signer.private, algorithm=signer.alg, headers=headers)


def unsigned_token(claims: Mapping[str, Any], kid: str = "key-1") -> str:
    """An ``alg: none`` token: the header says there is nothing to verify."""
    return pyjwt.encode(dict(claims), "", algorithm="none", headers={"kid": kid})


def hs256_with_public_key(claims: Mapping[str, Any], key: SigningKeyPair) -> str:
    """The algorithm-confusion forgery: HS256 keyed with the issuer's public key PEM.

    pyjwt refuses to build it (rightly), so it is assembled by hand.
    """
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
    payload = b64(json.dumps(dict(claims)).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(key.public_pem, signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"
