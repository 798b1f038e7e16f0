"""The ext_authz filter config the sandbox runs: typed, fail closed, accepted by real Envoy."""

from __future__ import annotations

import pytest
from envoy.extensions.filters.http.ext_authz.v3 import ext_authz_pb2

from mesh.certs import PkiPaths, write_pki
from mesh.envoy_config import (
    ext_authz_filter_config,
    render_yaml,
    sandbox_bootstrap,
    validate_with_envoy,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiPaths:
    return write_pki(tmp_path_factory.mktemp("pki"), "cluster.local",
                     {"a": "spiffe://cluster.local/ns/a/sa/a"})


def bootstrap(pki: PkiPaths, **flags: bool) -> dict:
    return sandbox_bootstrap(
        listen_port=10443, admin_port=19901, upstream_port=18080, weir_grpc_port=9000,
        ca_path=pki.ca, server_cert_path=pki.server_cert, server_key_path=pki.server_key,
        **flags,
    )


def test_the_ext_authz_config_parses_as_the_xds_protos_message_fail_closed() -> None:
    message = ext_authz_filter_config(cluster_name="weir_extproc", timeout_ms=300)
    parsed = ext_authz_pb2.ExtAuthz.FromString(bytes(message))
    assert parsed.grpc_service.envoy_grpc.cluster_name == "weir_extproc"
    assert parsed.grpc_service.timeout.ToMilliseconds() == 300
    assert parsed.failure_mode_allow is False
    assert parsed.transport_api_version == 2  # V3
    assert not parsed.HasField("with_request_body"), "header-only: no body is buffered"


@pytest.mark.parametrize(
    ("flags", "filters"),
    [
        ({}, ["envoy.filters.http.ext_proc"]),
        ({"ext_proc": False, "ext_authz": True}, ["envoy.filters.http.ext_authz"]),
        ({"ext_authz": True}, ["envoy.filters.http.ext_authz", "envoy.filters.http.ext_proc"]),
    ],
    ids=["ext_proc-default", "ext_authz-only", "both-authz-first"],
)
def test_the_sandbox_runs_the_chosen_guards_before_the_router_and_envoy_accepts_it(
    pki: PkiPaths, flags: dict[str, bool], filters: list[str]
) -> None:
    config = bootstrap(pki, **flags)
    chain = config["staticResources"]["listeners"][0]["filterChains"][0]
    http_filters = chain["filters"][0]["typedConfig"]["httpFilters"]
    assert [f["name"] for f in http_filters] == [*filters, "envoy.filters.http.router"]
    validate_with_envoy(render_yaml(config))


def test_a_sandbox_with_no_guard_is_refused(pki: PkiPaths) -> None:
    with pytest.raises(ValueError, match="guard nothing"):
        bootstrap(pki, ext_proc=False)
