"""JWT validation: what a token must be to pass, and the named reason for each refusal."""

from __future__ import annotations

import time

import pytest

from mesh.jwt import (
    MAX_TOKEN_BYTES,
    JwksError,
    JwksSource,
    KeySet,
    TokenRejected,
    TrustedIssuer,
    VerifiedToken,
    bearer_token,
    parse_jwks,
    verify,
)
from mesh.sandbox_idp import SandboxIdp, hs256_with_public_key, unsigned_token

ISSUER = "https://idp.example.com"
OTHER = "https://other-idp.example.com"


class Keys:
    """A KeyLookup over fixed key sets, per source."""

    def __init__(self, sets: dict[JwksSource, KeySet | None]) -> None:
        self.sets = sets

    def keys_for(self, source: JwksSource) -> KeySet | None:
        return self.sets.get(source)


@pytest.fixture(scope="module")
def idp() -> SandboxIdp:
    return SandboxIdp.create(ISSUER)


@pytest.fixture(scope="module")
def other() -> SandboxIdp:
    return SandboxIdp.create(OTHER, kid="other-1")


def trusted(idp: SandboxIdp, algorithms: tuple[str, ...] = ("RS256",)) -> TrustedIssuer:
    return TrustedIssuer(
        issuer=idp.issuer,
        audiences=("weir",),
        jwks=JwksSource(uri=f"{idp.issuer}/jwks.json"),
        algorithms=algorithms,
    )


def check(token: str, idp: SandboxIdp, *issuers: SandboxIdp) -> VerifiedToken | TokenRejected:
    all_issuers = (idp, *issuers)
    configs = [trusted(i) for i in all_issuers]
    keys = Keys({c.jwks: parse_jwks(i.jwks()) for c, i in zip(configs, all_issuers, strict=True)})
    return verify(token, configs, keys, leeway=5)


def rejected(result: VerifiedToken | TokenRejected) -> TokenRejected:
    assert isinstance(result, TokenRejected), result
    assert "eyJ" not in result.reason  # never echoes the token
    return result


def test_a_valid_token_yields_its_issuer_subject_and_claims(idp: SandboxIdp) -> None:
    token = idp.token(idp.claims("alice@corp.example", "weir", groups=["finance"]))
    result = check(token, idp)
    assert isinstance(result, VerifiedToken)
    assert (result.issuer, result.subject) == (ISSUER, "alice@corp.example")
    assert result.claims["groups"] == ["finance"]


def test_an_expired_token_is_refused_as_expired(idp: SandboxIdp) -> None:
    token = idp.token(idp.claims("alice", "weir", lifetime=-60))
    assert rejected(check(token, idp)).code == "expired"


def test_a_token_valid_only_later_is_refused(idp: SandboxIdp) -> None:
    claims = idp.claims("alice", "weir", nbf=int(time.time()) + 600)
    assert rejected(check(idp.token(claims), idp)).code == "not_yet_valid"


def test_a_token_issued_in_the_future_is_refused(idp: SandboxIdp) -> None:
    claims = idp.claims("alice", "weir", iat=int(time.time()) + 600)
    assert rejected(check(idp.token(claims), idp)).code == "not_yet_valid"


def test_a_token_without_exp_is_refused_naming_the_claim(idp: SandboxIdp) -> None:
    claims = idp.claims("alice", "weir")
    del claims["exp"]
    result = rejected(check(idp.token(claims), idp))
    assert (result.code, result.reason) == ("claims", "token has no 'exp' claim")


def test_alg_none_is_refused_by_the_allow_list(idp: SandboxIdp) -> None:
    result = rejected(check(unsigned_token(idp.claims("alice", "weir")), idp))
    assert result.code == "algorithm" and "'none'" in result.reason


def test_hs256_keyed_with_the_rsa_public_key_is_refused(idp: SandboxIdp) -> None:
    forged = hs256_with_public_key(idp.claims("alice", "weir"), idp.keys[0])
    result = rejected(check(forged, idp))
    assert result.code == "algorithm" and "HS256" in result.reason


def test_hs256_confusion_is_refused_even_if_hs256_were_listed(idp: SandboxIdp) -> None:
    # The policy loader never allows HS*; were it on the list, the key type check still refuses.
    config = trusted(idp, algorithms=("RS256", "HS256"))
    keys = Keys({config.jwks: parse_jwks(idp.jwks())})
    forged = hs256_with_public_key(idp.claims("alice", "weir"), idp.keys[0])
    assert isinstance(verify(forged, [config], keys), TokenRejected)


def test_an_unknown_kid_is_refused(idp: SandboxIdp) -> None:
    token = idp.token(idp.claims("alice", "weir"), kid="never-published")
    assert rejected(check(token, idp)).code == "kid"


def test_a_token_without_kid_is_refused(idp: SandboxIdp) -> None:
    import jwt

    token = jwt.encode(idp.claims("alice", "weir"), idp.keys[0].private, algorithm="RS256")
    assert rejected(check(token, idp)).code == "kid"


def test_a_token_signed_by_another_issuers_key_is_refused(
    idp: SandboxIdp, other: SandboxIdp
) -> None:
    # It claims our issuer but carries the other issuer's kid: our key set does not have it.
    claims = idp.claims("alice", "weir")
    assert rejected(check(other.token(claims), idp, other)).code == "kid"
    # Same, with our kid on the header: the signature does not verify with our key.
    assert rejected(check(other.token(claims, kid="key-1"), idp, other)).code == "signature"


def test_a_wrong_audience_is_refused(idp: SandboxIdp) -> None:
    token = idp.token(idp.claims("alice", "someone-else"))
    assert rejected(check(token, idp)).code == "audience"


def test_an_untrusted_issuer_is_refused(idp: SandboxIdp) -> None:
    stranger = SandboxIdp.create("https://evil.example.com")
    token = stranger.token(stranger.claims("alice", "weir"))
    assert rejected(check(token, idp)).code == "issuer"


def test_a_token_over_8_kib_is_refused_before_parsing(idp: SandboxIdp) -> None:
    token = idp.token(idp.claims("alice", "weir", padding="x" * MAX_TOKEN_BYTES))
    assert rejected(check(token, idp)).code == "too_large"


def test_garbage_is_refused_as_malformed(idp: SandboxIdp) -> None:
    assert rejected(check("a.b.c", idp)).code == "malformed"


def test_keys_that_cannot_be_had_fail_closed_as_unavailable(idp: SandboxIdp) -> None:
    config = trusted(idp)
    result = verify(idp.token(idp.claims("a", "weir")), [config], Keys({config.jwks: None}))
    assert isinstance(result, TokenRejected) and result.unavailable


def test_a_jwks_with_a_private_key_is_refused(idp: SandboxIdp) -> None:
    import json

    import jwt

    private = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(idp.keys[0].private))
    with pytest.raises(JwksError, match="private key"):
        parse_jwks(json.dumps({"keys": [{**private, "kid": "k"}]}))


def test_a_jwks_of_only_symmetric_keys_has_no_usable_key() -> None:
    with pytest.raises(JwksError, match="no usable"):
        parse_jwks('{"keys": [{"kty": "oct", "kid": "k", "k": "c2VjcmV0"}]}')


@pytest.mark.parametrize(
    ("header", "value", "expected"),
    [
        ("authorization", "Bearer a.b.c", "a.b.c"),
        ("authorization", "bearer  a.b.c ", "a.b.c"),
        ("authorization", "Bearer sk-an-api-key", None),
        ("authorization", "Basic dXNlcjpwdw==", None),
        ("x-user-token", "a.b.c", "a.b.c"),
        ("x-user-token", "", None),
    ],
)
def test_the_token_is_read_from_the_configured_header(
    header: str, value: str, expected: str | None
) -> None:
    assert bearer_token(value, header) == expected


def test_a_spiffe_trust_bundle_yields_its_jwt_svid_keys_only(idp: SandboxIdp) -> None:
    import json

    jwk = json.loads(idp.jwks())["keys"][0]
    bundle = {"keys": [{**jwk, "use": "jwt-svid"}, {**jwk, "kid": "root", "use": "x509-svid"}]}
    keys = parse_jwks(json.dumps(bundle))
    assert set(keys.keys) == {"key-1"}
