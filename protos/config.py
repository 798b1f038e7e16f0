"""Envoy configuration types: the one import point for ``envoy-data-plane``.

``envoy-data-plane`` (betterproto2 dataclasses) is used only to *build Envoy
configuration*: the sandbox bootstrap and the ext_proc filter config that the
Istio EnvoyFilter manifests embed. It is about 50x slower than ``xds-protos``
as a wire codec (see ``loadtest/bench_codec.py``), so nothing on the gRPC hot
path imports it; the wire types live in ``protos/wire.py``.

Names are re-exported with their Envoy package as a prefix where the bare
class name would be ambiguous or unreadable out of context
(``core.Address`` vs ``listener.Filter`` ...).
"""

from __future__ import annotations

import warnings

# Importing a module registers its messages in betterproto2's default message
# pool, which is what ``Any.pack`` / ``Any.to_dict`` resolve type URLs with.
# Every message we pack into an Any must therefore be imported here.
with warnings.catch_warnings():
    # envoy-data-plane 2.2's generated models use a pydantic idiom deprecated
    # in pydantic 2.12 (model_validator on a classmethod): 122 warnings at
    # import time that say nothing about our code and drown test output.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"envoy_data_plane\b")
    from envoy_data_plane.envoy.config.bootstrap.v3 import (
        Admin,
        Bootstrap,
        BootstrapStaticResources,
    )
    from envoy_data_plane.envoy.config.cluster.v3 import Cluster, ClusterDiscoveryType
    from envoy_data_plane.envoy.config.core.v3 import (
        Address,
        ApiVersion,
        DataSource,
        GrpcService,
        GrpcServiceEnvoyGrpc,
        Http1ProtocolOptions,
        Http2ProtocolOptions,
        Node,
        SocketAddress,
        TransportSocket,
    )
    from envoy_data_plane.envoy.config.endpoint.v3 import (
        ClusterLoadAssignment,
        Endpoint,
        LbEndpoint,
        LocalityLbEndpoints,
    )
    from envoy_data_plane.envoy.config.listener.v3 import Filter, FilterChain, Listener
    from envoy_data_plane.envoy.config.overload.v3 import OverloadManager, ResourceMonitor
    from envoy_data_plane.envoy.config.route.v3 import (
        Route,
        RouteAction,
        RouteConfiguration,
        RouteMatch,
        VirtualHost,
    )
    from envoy_data_plane.envoy.extensions.filters.http.ext_authz.v3 import ExtAuthz
    from envoy_data_plane.envoy.extensions.filters.http.ext_proc.v3 import (
        ExternalProcessor,
        ProcessingMode,
        ProcessingModeBodySendMode,
        ProcessingModeHeaderSendMode,
    )
    from envoy_data_plane.envoy.extensions.filters.http.router.v3 import Router
    from envoy_data_plane.envoy.extensions.filters.network.http_connection_manager.v3 import (
        HttpConnectionManager,
        HttpConnectionManagerCodecType,
        HttpConnectionManagerForwardClientCertDetails,
        HttpConnectionManagerSetCurrentClientCertDetails,
        HttpFilter,
    )
    from envoy_data_plane.envoy.extensions.resource_monitors.downstream_connections.v3 import (
        DownstreamConnectionsConfig,
    )
    from envoy_data_plane.envoy.extensions.transport_sockets.tls.v3 import (
        CertificateValidationContext,
        CommonTlsContext,
        DownstreamTlsContext,
        TlsCertificate,
    )
    from envoy_data_plane.envoy.extensions.upstreams.http.v3 import (
        HttpProtocolOptions,
        HttpProtocolOptionsExplicitHttpConfig,
    )
    from envoy_data_plane.google.protobuf import Any, Struct, Value

# Envoy's well-known extension names, kept next to the types they configure.
EXT_PROC_FILTER_NAME = "envoy.filters.http.ext_proc"
EXT_AUTHZ_FILTER_NAME = "envoy.filters.http.ext_authz"
ROUTER_FILTER_NAME = "envoy.filters.http.router"
HCM_FILTER_NAME = "envoy.filters.network.http_connection_manager"
TLS_TRANSPORT_SOCKET_NAME = "envoy.transport_sockets.tls"
HTTP_PROTOCOL_OPTIONS_KEY = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
DOWNSTREAM_CONNECTIONS_MONITOR_NAME = "envoy.resource_monitors.global_downstream_max_connections"

__all__ = [
    "DOWNSTREAM_CONNECTIONS_MONITOR_NAME",
    "EXT_AUTHZ_FILTER_NAME",
    "EXT_PROC_FILTER_NAME",
    "HCM_FILTER_NAME",
    "HTTP_PROTOCOL_OPTIONS_KEY",
    "ROUTER_FILTER_NAME",
    "TLS_TRANSPORT_SOCKET_NAME",
    "Address",
    "Admin",
    "Any",
    "ApiVersion",
    "Bootstrap",
    "BootstrapStaticResources",
    "CertificateValidationContext",
    "Cluster",
    "ClusterDiscoveryType",
    "ClusterLoadAssignment",
    "CommonTlsContext",
    "DataSource",
    "DownstreamConnectionsConfig",
    "DownstreamTlsContext",
    "Endpoint",
    "ExtAuthz",
    "ExternalProcessor",
    "Filter",
    "FilterChain",
    "GrpcService",
    "GrpcServiceEnvoyGrpc",
    "Http1ProtocolOptions",
    "Http2ProtocolOptions",
    "HttpConnectionManager",
    "HttpConnectionManagerCodecType",
    "HttpConnectionManagerForwardClientCertDetails",
    "HttpConnectionManagerSetCurrentClientCertDetails",
    "HttpFilter",
    "HttpProtocolOptions",
    "HttpProtocolOptionsExplicitHttpConfig",
    "LbEndpoint",
    "Listener",
    "LocalityLbEndpoints",
    "Node",
    "OverloadManager",
    "ProcessingMode",
    "ProcessingModeBodySendMode",
    "ProcessingModeHeaderSendMode",
    "ResourceMonitor",
    "Route",
    "RouteAction",
    "RouteConfiguration",
    "RouteMatch",
    "Router",
    "SocketAddress",
    "Struct",
    "TlsCertificate",
    "TransportSocket",
    "Value",
    "VirtualHost",
]
