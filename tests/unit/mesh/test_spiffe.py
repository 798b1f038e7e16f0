"""Strict SPIFFE ID parsing: what is accepted exactly as written, and what is refused."""

from __future__ import annotations

import pytest

from mesh.spiffe import SpiffeId, SpiffeIdError, parse_spiffe_id, parse_spiffe_id_in

VALID = [
    pytest.param(
        "spiffe://cluster.local/ns/payments/sa/checkout",
        "cluster.local",
        "/ns/payments/sa/checkout",
        id="istio_workload",
    ),
    pytest.param("spiffe://cluster.local", "cluster.local", "", id="trust_domain_only"),
    pytest.param("spiffe://td/a", "td", "/a", id="single_segment"),
    pytest.param(
        "spiffe://my-td_1.example/A.b-c_D/x..y/...",
        "my-td_1.example",
        "/A.b-c_D/x..y/...",
        id="every_allowed_character_and_dots_that_are_not_dot_segments",
    ),
    pytest.param("spiffe://" + "a" * 255, "a" * 255, "", id="trust_domain_of_255_bytes"),
    pytest.param(
        "spiffe://td/" + "p" * (2048 - len("spiffe://td/")),
        "td",
        "/" + "p" * (2048 - len("spiffe://td/")),
        id="id_of_exactly_2048_bytes",
    ),
]


@pytest.mark.parametrize(("value", "trust_domain", "path"), VALID)
def test_valid_ids_parse_and_print_back_unchanged(value: str, trust_domain: str, path: str) -> None:
    sid = parse_spiffe_id(value)
    assert sid == SpiffeId(trust_domain=trust_domain, path=path)
    assert str(sid) == value


INVALID = [
    pytest.param("", "empty", id="empty_string"),
    pytest.param("spiffe://", "trust domain is empty", id="scheme_only"),
    pytest.param("spiffe:///ns/a", "trust domain is empty", id="empty_trust_domain"),
    pytest.param("SPIFFE://cluster.local/ns/a", "lowercase 'spiffe://'", id="uppercase_scheme"),
    pytest.param("Spiffe://cluster.local/ns/a", "lowercase 'spiffe://'", id="mixed_case_scheme"),
    pytest.param("https://cluster.local/ns/a", "scheme must be", id="wrong_scheme"),
    pytest.param("spiffe:/cluster.local/ns/a", "scheme must be", id="one_slash_after_scheme"),
    pytest.param("cluster.local/ns/a", "scheme must be", id="no_scheme"),
    pytest.param(" spiffe://cluster.local/ns/a", "scheme must be", id="leading_space"),
    pytest.param("spiffe://Cluster.local/ns/a", "lowercase", id="uppercase_trust_domain"),
    pytest.param("spiffe://cluster.local:443/ns/a", "port", id="port"),
    pytest.param("spiffe://cluster.local:/ns/a", "port", id="empty_port"),
    pytest.param("spiffe://user@cluster.local/ns/a", "userinfo", id="userinfo"),
    pytest.param("spiffe://user:pw@cluster.local/ns/a", "userinfo", id="userinfo_with_password"),
    pytest.param("spiffe://cluster.local/ns/a?x=1", "query", id="query"),
    pytest.param("spiffe://cluster.local?x=1", "query", id="query_after_trust_domain"),
    pytest.param("spiffe://cluster.local/ns/a#frag", "fragment", id="fragment"),
    pytest.param("spiffe://cluster.local/ns/%61", "percent-encoding", id="percent_encoded_path"),
    pytest.param("spiffe://cluster%2elocal/ns/a", "percent-encoding", id="percent_encoded_domain"),
    pytest.param("spiffe://cluster.local/ns//a", "empty path segment", id="empty_segment"),
    pytest.param("spiffe://cluster.local/ns/a/", "trailing '/'", id="trailing_slash"),
    pytest.param("spiffe://cluster.local/", "trailing '/'", id="root_path_only"),
    pytest.param("spiffe://cluster.local/ns/./a", "'.'", id="dot_segment"),
    pytest.param("spiffe://cluster.local/ns/../a", "'..'", id="dot_dot_segment"),
    pytest.param("spiffe://cluster.local/..", "'..'", id="final_dot_dot_segment"),
    pytest.param("spiffe://cluster.local/ns/a b", "invalid character ' '", id="space_in_path"),
    pytest.param("spiffe://cluster.local/ns/a+b", "invalid character '+'", id="plus_in_path"),
    pytest.param("spiffe://cluster.local/ns/a@b", "invalid character '@'", id="at_in_path"),
    pytest.param("spiffe://cluster.local/ns/a:b", "invalid character ':'", id="colon_in_path"),
    pytest.param("spiffe://cluster.local/ns/a\\b", "invalid character", id="backslash_in_path"),
    pytest.param("spiffe://clu$ter.local/ns/a", "invalid character '$'", id="dollar_in_domain"),
    pytest.param("spiffe://cluster.local/ns/caf\u00e9", "non-ASCII", id="non_ascii_path"),
    pytest.param("spiffe://xn--caf\u00e9.local/ns/a", "non-ASCII", id="non_ascii_domain"),
    pytest.param("spiffe://cluster.local/ns/a\n", "invalid character", id="trailing_newline"),
    pytest.param("spiffe://cluster.local/ns/a\x00", "invalid character", id="nul_byte"),
    pytest.param("spiffe://" + "a" * 256, "255 bytes", id="trust_domain_over_255_bytes"),
    pytest.param(
        "spiffe://td/" + "p" * (2049 - len("spiffe://td/")),
        "2048 bytes",
        id="id_over_2048_bytes",
    ),
]


@pytest.mark.parametrize(("value", "reason"), INVALID)
def test_invalid_ids_are_rejected_with_a_reason(value: str, reason: str) -> None:
    with pytest.raises(SpiffeIdError) as caught:
        parse_spiffe_id(value)
    assert reason in caught.value.reason
    assert isinstance(caught.value, ValueError)


def test_a_non_string_is_rejected_rather_than_crashing() -> None:
    with pytest.raises(SpiffeIdError, match="expected a string"):
        parse_spiffe_id(b"spiffe://td/a")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "namespace", "service_account"),
    [
        pytest.param("spiffe://td/ns/payments/sa/checkout", "payments", "checkout", id="istio"),
        pytest.param("spiffe://td/ns/payments", None, None, id="namespace_only"),
        pytest.param("spiffe://td/ns/a/sa/b/extra", None, None, id="extra_segment"),
        pytest.param("spiffe://td/sa/b/ns/a", None, None, id="swapped_order"),
        pytest.param("spiffe://td", None, None, id="no_path"),
        pytest.param("spiffe://td/NS/a/SA/b", None, None, id="uppercase_markers"),
    ],
)
def test_istio_parts_are_read_only_from_the_exact_ns_sa_shape(
    value: str, namespace: str | None, service_account: str | None
) -> None:
    sid = parse_spiffe_id(value)
    assert sid.namespace == namespace
    assert sid.service_account == service_account


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        pytest.param("spiffe://cluster.local/ns/a/sa/b", True, id="local_trust_domain"),
        pytest.param("spiffe://evil.example/ns/a/sa/b", False, id="foreign_trust_domain"),
        pytest.param("spiffe://cluster.local.evil/ns/a", False, id="suffixed_trust_domain"),
        pytest.param("spiffe://local/ns/a", False, id="shorter_trust_domain"),
    ],
)
def test_parsing_in_a_trust_domain_rejects_foreign_ones(value: str, accepted: bool) -> None:
    if accepted:
        assert str(parse_spiffe_id_in(value, "cluster.local")) == value
    else:
        with pytest.raises(SpiffeIdError, match=r"is not the local trust domain 'cluster\.local'"):
            parse_spiffe_id_in(value, "cluster.local")


def test_an_invalid_id_is_reported_before_its_trust_domain_is_compared() -> None:
    with pytest.raises(SpiffeIdError, match="query"):
        parse_spiffe_id_in("spiffe://cluster.local/ns/a?x", "cluster.local")
