"""Properties of the identity and policy parsers on generated input.

The parsers sit on a trust boundary, so the properties are: they fail only
with their own error types, whatever the text; and what they accept reads
back exactly as written.
"""

from __future__ import annotations

import contextlib
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from mesh.identity import NODE_METADATA, PEER_CERTIFICATE, XFCC, IdentityInputs, resolve_identity
from mesh.policy import PolicyError, parse_policy
from mesh.spiffe import SpiffeId, SpiffeIdError, parse_spiffe_id
from mesh.xfcc import XfccElement, XfccError, parse_xfcc

TD_CHARS = string.ascii_lowercase + string.digits + ".-_"
SEGMENT_CHARS = string.ascii_letters + string.digits + ".-_"
# Text biased toward the characters the grammars care about, so generated
# input reaches past the first check.
SPIFFE_NOISE = st.text(alphabet=TD_CHARS + "/:@?#%A ./\u00e9", max_size=60)
XFCC_NOISE = st.text(alphabet='=;,"\\ aBU/:' + "\u00e9", max_size=60)

trust_domains = st.text(alphabet=TD_CHARS, min_size=1, max_size=40)
segments = st.text(alphabet=SEGMENT_CHARS, min_size=1, max_size=20).filter(
    lambda s: s not in (".", "..")
)
paths = st.lists(segments, max_size=6).map(lambda segs: "".join("/" + s for s in segs))


@given(st.one_of(st.text(), SPIFFE_NOISE.map(lambda t: "spiffe://" + t)))
def test_spiffe_parsing_fails_only_with_spiffe_id_error(value: str) -> None:
    try:
        sid = parse_spiffe_id(value)
    except SpiffeIdError:
        return
    # Whatever is accepted is accepted verbatim: no normalisation.
    assert str(sid) == value


@given(trust_domains, paths)
def test_a_valid_spiffe_id_round_trips_through_str(trust_domain: str, path: str) -> None:
    text = f"spiffe://{trust_domain}{path}"
    sid = parse_spiffe_id(text)
    assert sid == SpiffeId(trust_domain=trust_domain, path=path)
    assert str(sid) == text
    assert parse_spiffe_id(str(sid)) == sid


@given(st.one_of(st.text(max_size=300), XFCC_NOISE))
def test_xfcc_parsing_fails_only_with_xfcc_error(header: str) -> None:
    with contextlib.suppress(XfccError):
        parse_xfcc(header)


def quote_xfcc_value(value: str, force: bool) -> str:
    """Write a value the way Envoy does: quoted when it must be, with escapes."""
    if force or value == "" or any(c in value for c in ',;="\\'):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value


def serialise_xfcc(elements: list[list[tuple[str, str, bool]]]) -> str:
    return ",".join(
        ";".join(f"{key}={quote_xfcc_value(value, force)}" for key, value, force in element)
        for element in elements
    )


values = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
single_keys = st.sampled_from(["By", "Hash", "Cert", "Chain", "Subject"])
repeatable_keys = st.sampled_from(["URI", "DNS", "uri", "x-custom"])


@st.composite
def xfcc_elements(draw: st.DrawFn) -> list[tuple[str, str, bool]]:
    singles = draw(st.lists(single_keys, unique=True, max_size=5))
    repeats = draw(st.lists(repeatable_keys, max_size=4))
    keys = draw(st.permutations(singles + repeats))
    if not keys:
        keys = ["URI"]
    return [(key, draw(values), draw(st.booleans())) for key in keys]


@settings(max_examples=300)
@given(st.lists(xfcc_elements(), min_size=1, max_size=6))
def test_a_serialised_xfcc_header_round_trips(elements: list[list[tuple[str, str, bool]]]) -> None:
    parsed = parse_xfcc(serialise_xfcc(elements))
    assert parsed == [
        XfccElement(tuple((key, value) for key, value, _ in element)) for element in elements
    ]


@given(
    st.one_of(st.none(), st.text(max_size=80), SPIFFE_NOISE.map(lambda t: "spiffe://" + t)),
    st.one_of(st.none(), st.text(max_size=20)),
    st.one_of(st.none(), st.text(max_size=20)),
    st.one_of(st.none(), st.text(max_size=200), XFCC_NOISE),
)
def test_identity_resolution_never_raises_on_any_input(
    peer: str | None, namespace: str | None, account: str | None, header: str | None
) -> None:
    identity = resolve_identity(
        IdentityInputs(peer, namespace, account, header),
        sources=[PEER_CERTIFICATE, NODE_METADATA, XFCC],
        trust_domain="cluster.local",
        trusted_proxies=["spiffe://cluster.local/ns/istio-system/sa/gw"],
    )
    if identity.source is not None:
        assert identity.principal.startswith("spiffe://cluster.local/")


POLICY_NOISE = st.text(
    alphabet="trustDomain: cluster.local\n-[]{}'\"workloadsmatch*,#&!", max_size=200
)


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200), POLICY_NOISE))
def test_policy_parsing_fails_only_with_policy_error(text: str | bytes) -> None:
    try:
        parse_policy(text, "fuzz.yaml")
    except PolicyError as err:
        assert str(err).startswith("fuzz.yaml: ")
