"""Identity resolution: sources in order, strict parsing, and XFCC forgery resistance."""

from __future__ import annotations

import pytest

from mesh.identity import (
    NODE_METADATA,
    PEER_CERTIFICATE,
    UNAUTHENTICATED,
    XFCC,
    Identity,
    IdentityInputs,
    resolve_identity,
)

TD = "cluster.local"
GW = "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
OTHER_PROXY = "spiffe://cluster.local/ns/default/sa/not-a-gateway"
APP = "spiffe://cluster.local/ns/payments/sa/checkout"
EVIL = "spiffe://cluster.local/ns/admin/sa/root"
ALL = (PEER_CERTIFICATE, NODE_METADATA, XFCC)


def resolve(inputs: IdentityInputs, sources: tuple[str, ...] = ALL) -> Identity:
    return resolve_identity(inputs, sources=sources, trust_domain=TD, trusted_proxies=[GW])


def xfcc(header: str) -> IdentityInputs:
    return IdentityInputs(xfcc=header)


CASES = [
    # --- peer certificate ---
    pytest.param(
        IdentityInputs(peer_uri_san=APP),
        APP,
        PEER_CERTIFICATE,
        id="peer_certificate_in_trust_domain_is_accepted",
    ),
    pytest.param(
        IdentityInputs(peer_uri_san="spiffe://evil.example/ns/payments/sa/checkout"),
        UNAUTHENTICATED,
        None,
        id="peer_certificate_from_foreign_trust_domain_is_ignored",
    ),
    pytest.param(
        IdentityInputs(peer_uri_san=APP + "?admin=1"),
        UNAUTHENTICATED,
        None,
        id="peer_id_with_query_is_ignored",
    ),
    pytest.param(
        IdentityInputs(peer_uri_san=APP + "#frag"),
        UNAUTHENTICATED,
        None,
        id="peer_id_with_fragment_is_ignored",
    ),
    pytest.param(
        IdentityInputs(peer_uri_san="spiffe://cluster.local:8443/ns/a/sa/b"),
        UNAUTHENTICATED,
        None,
        id="peer_id_with_port_is_ignored",
    ),
    pytest.param(
        IdentityInputs(peer_uri_san="spiffe://me@cluster.local/ns/a/sa/b"),
        UNAUTHENTICATED,
        None,
        id="peer_id_with_userinfo_is_ignored",
    ),
    pytest.param(
        IdentityInputs(peer_uri_san="spiffe://cluster.local/ns/p%61yments/sa/checkout"),
        UNAUTHENTICATED,
        None,
        id="peer_id_with_percent_encoding_is_ignored",
    ),
    pytest.param(
        IdentityInputs(peer_uri_san="spiffe://Cluster.Local/ns/payments/sa/checkout"),
        UNAUTHENTICATED,
        None,
        id="peer_id_with_uppercase_trust_domain_is_ignored",
    ),
    pytest.param(
        IdentityInputs(peer_uri_san="spiffe://cluster.local/ns//sa/checkout"),
        UNAUTHENTICATED,
        None,
        id="peer_id_with_empty_segment_is_ignored",
    ),
    pytest.param(
        IdentityInputs(peer_uri_san="spiffe://cluster.local/ns/payments/sa/../x"),
        UNAUTHENTICATED,
        None,
        id="peer_id_with_dot_dot_segment_is_ignored",
    ),
    pytest.param(
        IdentityInputs(peer_uri_san="spiffe://cluster.local/ns/./sa/checkout"),
        UNAUTHENTICATED,
        None,
        id="peer_id_with_dot_segment_is_ignored",
    ),
    pytest.param(
        IdentityInputs(peer_uri_san=""),
        UNAUTHENTICATED,
        None,
        id="empty_peer_uri_san_is_no_identity",
    ),
    # --- node metadata ---
    pytest.param(
        IdentityInputs(node_namespace="payments", node_service_account="checkout"),
        APP,
        NODE_METADATA,
        id="node_metadata_builds_the_istio_id",
    ),
    pytest.param(
        IdentityInputs(node_namespace="payments"),
        UNAUTHENTICATED,
        None,
        id="node_metadata_without_service_account_is_no_identity",
    ),
    pytest.param(
        IdentityInputs(node_namespace="admin/sa/root/x", node_service_account="y"),
        UNAUTHENTICATED,
        None,
        id="node_namespace_with_slashes_cannot_inject_segments",
    ),
    pytest.param(
        IdentityInputs(node_namespace="payments", node_service_account="a?b"),
        UNAUTHENTICATED,
        None,
        id="node_service_account_with_query_is_rejected",
    ),
    pytest.param(
        IdentityInputs(node_namespace="..", node_service_account="checkout"),
        UNAUTHENTICATED,
        None,
        id="node_namespace_dot_dot_is_rejected",
    ),
    pytest.param(
        IdentityInputs(node_namespace="pay ments", node_service_account="checkout"),
        UNAUTHENTICATED,
        None,
        id="node_namespace_with_space_is_rejected",
    ),
    # --- xfcc ---
    pytest.param(
        xfcc(f"By={GW};URI={APP}"), APP, XFCC, id="xfcc_element_from_trusted_proxy_is_accepted"
    ),
    pytest.param(
        xfcc(f'By={GW};Hash=abc;Subject="CN=x, O=\\"Acme, Inc\\"";URI={APP};DNS=d'),
        APP,
        XFCC,
        id="xfcc_with_quoted_subject_escaped_quotes_and_commas",
    ),
    pytest.param(xfcc(f"by={GW};uri={APP}"), APP, XFCC, id="xfcc_keys_in_lower_case"),
    pytest.param(xfcc(f'By="{GW}";URI="{APP}"'), APP, XFCC, id="xfcc_quoted_by_and_uri"),
    pytest.param(
        xfcc(f"By=spiffe://cluster.local/ns/x/sa/client;URI={EVIL},By={GW};URI={APP}"),
        APP,
        XFCC,
        id="xfcc_earlier_elements_are_ignored",
    ),
    pytest.param(
        xfcc(f"By={GW};URI={EVIL},By={GW};URI={APP}"),
        APP,
        XFCC,
        id="xfcc_client_prepended_element_with_trusted_by_is_ignored",
    ),
    pytest.param(
        xfcc(f"URI={EVIL},By={OTHER_PROXY};URI={APP}"),
        UNAUTHENTICATED,
        None,
        id="xfcc_last_element_by_untrusted_proxy_is_rejected",
    ),
    pytest.param(
        xfcc(f"By={GW};URI={APP},URI={EVIL}"),
        UNAUTHENTICATED,
        None,
        id="xfcc_forged_last_element_without_by_is_rejected",
    ),
    pytest.param(
        xfcc(f"By={GW};URI={EVIL},Hash=x;URI={APP}"),
        UNAUTHENTICATED,
        None,
        id="xfcc_first_uri_is_never_taken",
    ),
    pytest.param(xfcc(f"By={GW}"), UNAUTHENTICATED, None, id="xfcc_last_element_without_uri"),
    pytest.param(
        xfcc(f"By={GW};URI={APP};URI={EVIL}"),
        UNAUTHENTICATED,
        None,
        id="xfcc_last_element_with_two_uris_is_rejected",
    ),
    pytest.param(
        xfcc(f"By={GW};By={OTHER_PROXY};URI={APP}"),
        UNAUTHENTICATED,
        None,
        id="xfcc_element_with_two_by_is_rejected",
    ),
    pytest.param(
        xfcc(f"By={GW}-evil;URI={APP}"),
        UNAUTHENTICATED,
        None,
        id="xfcc_by_that_only_starts_like_a_trusted_proxy",
    ),
    pytest.param(
        xfcc(f"By={GW}/;URI={APP}"),
        UNAUTHENTICATED,
        None,
        id="xfcc_by_with_trailing_slash_is_not_the_trusted_proxy",
    ),
    pytest.param(
        xfcc(f"By=SPIFFE://cluster.local/ns/istio-system/sa/x;URI={APP}"),
        UNAUTHENTICATED,
        None,
        id="xfcc_by_that_is_not_a_valid_spiffe_id",
    ),
    pytest.param(
        xfcc(f"By={GW};URI=spiffe://evil.example/ns/payments/sa/checkout"),
        UNAUTHENTICATED,
        None,
        id="xfcc_uri_from_foreign_trust_domain",
    ),
    pytest.param(xfcc(f"By={GW};URI={APP}?x"), UNAUTHENTICATED, None, id="xfcc_uri_with_query"),
    pytest.param(
        xfcc(f'URI="{EVIL},By={GW};URI={APP}'),
        UNAUTHENTICATED,
        None,
        id="xfcc_unterminated_quote_fails_the_whole_header",
    ),
    pytest.param(
        xfcc(f"By={GW};URI={APP};Subject"),
        UNAUTHENTICATED,
        None,
        id="xfcc_pair_without_equals_fails_the_whole_header",
    ),
    pytest.param(xfcc(""), UNAUTHENTICATED, None, id="xfcc_empty_header"),
    # --- nothing at all ---
    pytest.param(IdentityInputs(), UNAUTHENTICATED, None, id="no_inputs_is_unauthenticated"),
]


@pytest.mark.parametrize(("inputs", "principal", "source"), CASES)
def test_each_source_yields_only_a_strictly_valid_local_identity(
    inputs: IdentityInputs, principal: str, source: str | None
) -> None:
    identity = resolve(inputs)
    assert (identity.principal, identity.source) == (principal, source)


ORDER = [
    pytest.param(
        (PEER_CERTIFICATE, NODE_METADATA), APP, PEER_CERTIFICATE, id="peer_certificate_first_wins"
    ),
    pytest.param(
        (NODE_METADATA, PEER_CERTIFICATE), EVIL, NODE_METADATA, id="node_metadata_first_wins"
    ),
    pytest.param(
        (XFCC, PEER_CERTIFICATE),
        "spiffe://cluster.local/ns/xf/sa/caller",
        XFCC,
        id="xfcc_first_wins",
    ),
    pytest.param((NODE_METADATA,), EVIL, NODE_METADATA, id="only_listed_sources_are_tried"),
    pytest.param((), UNAUTHENTICATED, None, id="no_sources_means_unauthenticated"),
]


@pytest.mark.parametrize(("sources", "principal", "source"), ORDER)
def test_sources_are_tried_in_the_configured_order(
    sources: tuple[str, ...], principal: str, source: str | None
) -> None:
    inputs = IdentityInputs(
        peer_uri_san=APP,
        node_namespace="admin",
        node_service_account="root",
        xfcc=f"By={GW};URI=spiffe://cluster.local/ns/xf/sa/caller",
    )
    identity = resolve(inputs, sources)
    assert (identity.principal, identity.source) == (principal, source)


def test_a_rejected_source_falls_through_to_the_next_one() -> None:
    inputs = IdentityInputs(
        peer_uri_san="spiffe://evil.example/ns/a/sa/b",
        node_namespace="payments",
        node_service_account="checkout",
    )
    identity = resolve(inputs, (PEER_CERTIFICATE, NODE_METADATA))
    assert identity == Identity(
        principal=APP,
        source=NODE_METADATA,
        detail="peer-certificate: invalid URI SAN: trust domain 'evil.example' is not the "
        "local trust domain 'cluster.local'; node-metadata: accepted",
    )


def test_the_detail_says_why_every_source_was_rejected() -> None:
    identity = resolve(IdentityInputs(peer_uri_san=APP + "#x", xfcc=f"By={OTHER_PROXY};URI={APP}"))
    assert identity.principal == UNAUTHENTICATED
    assert identity.detail == (
        "peer-certificate: invalid URI SAN: fragment ('#') not allowed; "
        "node-metadata: NAMESPACE or SERVICE_ACCOUNT missing; "
        "xfcc: last element By is not a trusted proxy"
    )


def test_the_detail_never_repeats_header_contents() -> None:
    secret_looking = 'Cert="-----BEGIN CERTIFICATE-----MIIBsecret"'
    identity = resolve(xfcc(f"By={GW};{secret_looking};URI={APP};URI={EVIL}"))
    assert identity.principal == UNAUTHENTICATED
    assert "MIIBsecret" not in identity.detail
    assert EVIL not in identity.detail


def test_xfcc_is_not_trusted_without_trusted_proxies() -> None:
    identity = resolve_identity(
        xfcc(f"By={GW};URI={APP}"), sources=[XFCC], trust_domain=TD, trusted_proxies=[]
    )
    assert identity.principal == UNAUTHENTICATED


def test_an_unknown_source_name_is_a_configuration_bug() -> None:
    with pytest.raises(ValueError, match="unknown identity source 'jwt'"):
        resolve(IdentityInputs(peer_uri_san=APP), ("jwt",))
