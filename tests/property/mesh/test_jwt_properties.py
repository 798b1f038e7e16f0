"""Token parsing never raises, and never lets an unsigned or altered token through."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mesh.jwt import JwksSource, KeySet, TokenRejected, TrustedIssuer, bearer_token, peek, verify
from mesh.jwt import parse_jwks as _parse_jwks
from mesh.sandbox_idp import SandboxIdp

IDP = SandboxIdp.create("https://idp.example.com")
ISSUER = TrustedIssuer(
    issuer=IDP.issuer, audiences=("weir",), jwks=JwksSource(file="jwks.json"),
    algorithms=("RS256",),
)
KEYS = _parse_jwks(IDP.jwks())
GOOD = IDP.token(IDP.claims("ana", "weir", lifetime=86400))


class _Keys:
    def keys_for(self, source: JwksSource) -> KeySet | None:
        return KEYS


segment = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/",
                  max_size=60)


@given(st.one_of(st.text(max_size=200), st.builds(lambda a, b, c: f"{a}.{b}.{c}",
                                                 segment, segment, segment)))
@settings(max_examples=300, deadline=None)
def test_any_text_is_refused_by_name_never_raised(text: str) -> None:
    assert isinstance(verify(text, [ISSUER], _Keys()), TokenRejected)
    peek(text)
    bearer_token(text, "authorization")
    bearer_token(text, "x-user-token")


@given(st.integers(min_value=0, max_value=len(GOOD) - 1), st.sampled_from("AQgw-_"))
@settings(max_examples=200, deadline=None)
def test_changing_any_character_of_a_good_token_breaks_it(position: int, replacement: str) -> None:
    if GOOD[position] in (".", replacement):
        return
    altered = GOOD[:position] + replacement + GOOD[position + 1 :]
    result = verify(altered, [ISSUER], _Keys())
    if isinstance(result, TokenRejected):
        return
    # Accepted only if the change touched nothing but unused bits of a segment's last
    # base64 character: every segment still decodes to the very same bytes.
    assert [_bytes(p) for p in altered.split(".")] == [_bytes(p) for p in GOOD.split(".")]


def _bytes(segment: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
