"""The Envoy config builder: typed ext_proc filter, sandbox bootstrap, real Envoy validation."""

from __future__ import annotations

import copy
import datetime
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from envoy.extensions.filters.http.ext_proc.v3 import ext_proc_pb2, processing_mode_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2,
)
from google.protobuf import json_format

from mesh.certs import PkiPaths, write_pki
from mesh.envoy_config import (
    IDENTITY_ATTRIBUTES,
    EnvoyConfigError,
    envoy_binary,
    ext_proc_filter_config,
    ext_proc_filter_dict,
    ext_proc_http_filter,
    render_yaml,
    sandbox_bootstrap,
    validate_with_envoy,
)

ISTIO_CLUSTER = "outbound|9000||weir.weir-system.svc.cluster.local"
PM = processing_mode_pb2.ProcessingMode


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiPaths:
    return write_pki(
        tmp_path_factory.mktemp("pki"),
        "cluster.local",
        {"checkout": "spiffe://cluster.local/ns/payments/sa/checkout"},
    )


def bootstrap(pki: PkiPaths, **overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "listen_port": 10443,
        "admin_port": 9901,
        "upstream_port": 8080,
        "weir_grpc_port": 9000,
        "ca_path": pki.ca,
        "server_cert_path": pki.server_cert,
        "server_key_path": pki.server_key,
    }
    kwargs.update(overrides)
    return sandbox_bootstrap(**kwargs)


def hcm_of(config: dict[str, Any]) -> dict[str, Any]:
    chain = config["staticResources"]["listeners"][0]["filterChains"][0]
    hcm: dict[str, Any] = chain["filters"][0]["typedConfig"]
    return hcm


def clusters_of(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in config["staticResources"]["clusters"]}


# --- the ext_proc filter, round-tripped through the xds-protos type -------------------


@pytest.mark.parametrize(
    ("cluster_name", "attributes", "timeout_ms"),
    [
        ("weir_extproc", IDENTITY_ATTRIBUTES["peer-certificate"], 2000),
        ("weir_extproc", IDENTITY_ATTRIBUTES["node-metadata"], 350),
        (ISTIO_CLUSTER, IDENTITY_ATTRIBUTES["xfcc"], 1500),
        (ISTIO_CLUSTER, ("connection.uri_san_peer_certificate", "xds.node"), 2000),
    ],
)
def test_ext_proc_config_parses_as_the_xds_protos_message_with_every_field_intact(
    cluster_name: str, attributes: tuple[str, ...], timeout_ms: int
) -> None:
    message = ext_proc_filter_config(
        cluster_name=cluster_name, request_attributes=attributes, message_timeout_ms=timeout_ms
    )
    parsed = ext_proc_pb2.ExternalProcessor.FromString(bytes(message))

    assert parsed.grpc_service.envoy_grpc.cluster_name == cluster_name
    mode = parsed.processing_mode
    assert (mode.request_header_mode, mode.response_header_mode) == (PM.SEND, PM.SEND)
    assert mode.request_body_mode == PM.FULL_DUPLEX_STREAMED
    assert mode.response_body_mode == PM.FULL_DUPLEX_STREAMED
    assert (mode.request_trailer_mode, mode.response_trailer_mode) == (PM.SEND, PM.SEND)
    assert parsed.failure_mode_allow is False
    assert parsed.allow_mode_override is False
    assert parsed.message_timeout.ToTimedelta() == datetime.timedelta(milliseconds=timeout_ms)
    assert list(parsed.request_attributes) == list(attributes)


def test_identity_sources_map_to_the_attributes_envoy_must_send() -> None:
    assert dict(IDENTITY_ATTRIBUTES) == {
        "peer-certificate": ("connection.uri_san_peer_certificate",),
        "node-metadata": ("xds.node",),
        "xfcc": (),
    }


def test_allow_mode_override_is_off_unless_asked_for() -> None:
    message = ext_proc_filter_config(
        cluster_name="c", request_attributes=(), allow_mode_override=True
    )
    assert ext_proc_pb2.ExternalProcessor.FromString(bytes(message)).allow_mode_override


@pytest.mark.parametrize("timeout_ms", [0, -1])
def test_a_non_positive_message_timeout_is_refused(timeout_ms: int) -> None:
    with pytest.raises(ValueError, match="message_timeout_ms"):
        ext_proc_filter_config(
            cluster_name="c", request_attributes=(), message_timeout_ms=timeout_ms
        )


def test_the_http_filter_packs_the_config_under_the_ext_proc_name() -> None:
    http_filter = ext_proc_http_filter(cluster_name="c", request_attributes=("xds.node",))
    parsed = http_connection_manager_pb2.HttpFilter.FromString(bytes(http_filter))
    assert parsed.name == "envoy.filters.http.ext_proc"
    config = ext_proc_pb2.ExternalProcessor()
    assert parsed.typed_config.Unpack(config)
    assert config.grpc_service.envoy_grpc.cluster_name == "c"


def test_the_envoyfilter_dict_states_fail_closed_and_parses_back_to_the_same_filter() -> None:
    kwargs: dict[str, Any] = {
        "cluster_name": ISTIO_CLUSTER,
        "request_attributes": ("connection.uri_san_peer_certificate",),
        "message_timeout_ms": 1500,
    }
    as_dict = ext_proc_filter_dict(**kwargs)

    assert as_dict["name"] == "envoy.filters.http.ext_proc"
    typed = as_dict["typedConfig"]
    assert typed["@type"].endswith("envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor")
    assert typed["failureModeAllow"] is False
    assert typed["messageTimeout"] == "1.500s"
    parsed = json_format.ParseDict(as_dict, http_connection_manager_pb2.HttpFilter())
    expected = http_connection_manager_pb2.HttpFilter.FromString(
        bytes(ext_proc_http_filter(**kwargs))
    )
    assert parsed == expected


# --- the sandbox bootstrap -------------------------------------------------------------------


def test_the_listener_requires_a_client_certificate_signed_by_the_sandbox_ca(
    pki: PkiPaths,
) -> None:
    chain = bootstrap(pki)["staticResources"]["listeners"][0]["filterChains"][0]
    tls = chain["transportSocket"]["typedConfig"]
    assert tls["@type"].endswith("tls.v3.DownstreamTlsContext")
    assert tls["requireClientCertificate"] is True
    common = tls["commonTlsContext"]
    assert common["validationContext"]["trustedCa"]["filename"] == str(pki.ca)
    assert common["tlsCertificates"][0]["certificateChain"]["filename"] == str(pki.server_cert)
    assert common["tlsCertificates"][0]["privateKey"]["filename"] == str(pki.server_key)


def test_the_connection_manager_replaces_client_xfcc_and_runs_ext_proc_before_router(
    pki: PkiPaths,
) -> None:
    hcm = hcm_of(bootstrap(pki))
    assert hcm["codecType"] == "AUTO"
    assert hcm["forwardClientCertDetails"] == "SANITIZE_SET"
    assert hcm["setCurrentClientCertDetails"] == {"uri": True}
    assert [f["name"] for f in hcm["httpFilters"]] == [
        "envoy.filters.http.ext_proc",
        "envoy.filters.http.router",
    ]
    route = hcm["routeConfig"]["virtualHosts"][0]["routes"][0]
    assert route["match"] == {"prefix": "/"}
    assert route["route"]["cluster"] == "llm_upstream"
    assert route["route"]["timeout"] == "60s"


def test_the_sandbox_embeds_exactly_the_filter_the_overlays_ship(pki: PkiPaths) -> None:
    embedded = hcm_of(bootstrap(pki, message_timeout_ms=700))["httpFilters"][0]
    shipped = ext_proc_filter_dict(
        cluster_name="weir_extproc",
        request_attributes=("connection.uri_san_peer_certificate",),
        message_timeout_ms=700,
    )
    assert embedded == shipped


@pytest.mark.parametrize(
    ("cluster", "port", "protocol"),
    [
        ("weir_extproc", 9000, "http2ProtocolOptions"),
        ("llm_upstream", 8080, "httpProtocolOptions"),
    ],
)
def test_each_cluster_is_a_static_localhost_endpoint_with_an_explicit_protocol(
    pki: PkiPaths, cluster: str, port: int, protocol: str
) -> None:
    found = clusters_of(bootstrap(pki))[cluster]
    assert found["type"] == "STATIC"
    assert found["connectTimeout"] == "1s"
    endpoint = found["loadAssignment"]["endpoints"][0]["lbEndpoints"][0]["endpoint"]
    assert endpoint["address"]["socketAddress"] == {"address": "127.0.0.1", "portValue": port}
    options = found["typedExtensionProtocolOptions"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ]
    assert list(options["explicitHttpConfig"]) == [protocol]


@pytest.mark.parametrize(
    ("node_metadata", "expected"),
    [
        (None, None),
        (
            {"NAMESPACE": "payments", "SERVICE_ACCOUNT": "checkout"},
            {"NAMESPACE": "payments", "SERVICE_ACCOUNT": "checkout"},
        ),
    ],
)
def test_node_metadata_is_set_only_when_given(
    pki: PkiPaths, node_metadata: dict[str, str] | None, expected: dict[str, str] | None
) -> None:
    node = bootstrap(pki, node_metadata=node_metadata)["node"]
    assert node.get("metadata") == expected
    assert node["id"] and node["cluster"]


def test_the_mcp_route_goes_to_the_tool_server_before_the_catch_all_only_when_asked(
    pki: PkiPaths,
) -> None:
    def routes(config: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
        [host] = hcm_of(config)["routeConfig"]["virtualHosts"]
        return [(r["match"], r["route"]["cluster"]) for r in host["routes"]]

    assert routes(bootstrap(pki)) == [({"prefix": "/"}, "llm_upstream")]
    assert "mcp_tools" not in clusters_of(bootstrap(pki))
    config = bootstrap(pki, mcp_port=8090)
    assert routes(config) == [({"path": "/mcp"}, "mcp_tools"), ({"prefix": "/"}, "llm_upstream")]
    endpoint = clusters_of(config)["mcp_tools"]["loadAssignment"]["endpoints"][0]
    assert endpoint["lbEndpoints"][0]["endpoint"]["address"]["socketAddress"]["portValue"] == 8090


def test_the_rendered_yaml_loads_back_to_the_same_config(pki: PkiPaths) -> None:
    config = bootstrap(pki)
    assert yaml.safe_load(render_yaml(config)) == config


# --- real Envoy ---------------------------------------------------------------------------------


def test_the_envoy_binary_is_found_and_executable() -> None:
    path = envoy_binary()
    assert os.access(path, os.X_OK)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {
            "request_attributes": IDENTITY_ATTRIBUTES["node-metadata"],
            "node_metadata": {"NAMESPACE": "payments", "SERVICE_ACCOUNT": "checkout"},
        },
        {"request_attributes": IDENTITY_ATTRIBUTES["xfcc"]},
        {"weir_cluster_name": ISTIO_CLUSTER, "allow_mode_override": True},
        {"mcp_port": 8090},
    ],
    ids=["peer-certificate", "node-metadata", "xfcc", "istio-cluster-name", "mcp-route"],
)
def test_real_envoy_accepts_the_sandbox_bootstrap(pki: PkiPaths, overrides: dict[str, Any]) -> None:
    validate_with_envoy(render_yaml(bootstrap(pki, **overrides)))


def _drop_request_trailer_mode(config: dict[str, Any]) -> None:
    del hcm_of(config)["httpFilters"][0]["typedConfig"]["processingMode"]["requestTrailerMode"]


def _rename_upstream_cluster(config: dict[str, Any]) -> None:
    clusters_of(config)["llm_upstream"]["name"] = "renamed"


def _missing_ca_file(config: dict[str, Any]) -> None:
    chain = config["staticResources"]["listeners"][0]["filterChains"][0]
    common = chain["transportSocket"]["typedConfig"]["commonTlsContext"]
    common["validationContext"]["trustedCa"]["filename"] = "/nonexistent/ca.pem"


@pytest.mark.parametrize(
    ("breakage", "envoy_says"),
    [
        (
            _drop_request_trailer_mode,
            "request_body_mode set to FULL_DUPLEX_STREAMED, "
            "then the request_trailer_mode has to be set to SEND",
        ),
        (_rename_upstream_cluster, "unknown cluster 'llm_upstream'"),
        (_missing_ca_file, "Invalid path: /nonexistent/ca.pem"),
    ],
    ids=["fds-without-trailers", "route-to-missing-cluster", "missing-ca-file"],
)
def test_real_envoy_rejects_a_broken_config_and_the_error_carries_its_message(
    pki: PkiPaths, breakage: Any, envoy_says: str
) -> None:
    config = copy.deepcopy(bootstrap(pki))
    breakage(config)
    with pytest.raises(EnvoyConfigError) as raised:
        validate_with_envoy(render_yaml(config))
    assert envoy_says in str(raised.value)


def test_a_missing_envoy_binary_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        validate_with_envoy("{}", envoy_bin=str(tmp_path / "no-envoy"))
