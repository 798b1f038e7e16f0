"""The one import point for Envoy's *wire* types (xds-protos, upb-backed protobuf).

The ext_proc hot path uses these messages and nothing else: `loadtest/bench_codec.py`
measures them against envoy-data-plane's dataclasses (about 50x faster here).
This module also translates between the wire and Weir's own vocabulary
(`extproc.events`), so nothing past it needs to know protobuf.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from envoy.service.ext_proc.v3 import external_processor_pb2 as ext_proc_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ext_proc_grpc
from envoy.type.v3 import http_status_pb2
from google.protobuf import json_format, text_format

from extproc.events import (
    Action,
    BodyEvent,
    ContinueHeaders,
    ContinueTrailers,
    Direction,
    Event,
    Headers,
    HeadersEvent,
    Respond,
    StreamBody,
    TrailersEvent,
)

ProcessingRequest = ext_proc_pb2.ProcessingRequest
ProcessingResponse = ext_proc_pb2.ProcessingResponse
ExternalProcessorServicer = ext_proc_grpc.ExternalProcessorServicer
ExternalProcessorStub = ext_proc_grpc.ExternalProcessorStub
add_ExternalProcessorServicer_to_server = ext_proc_grpc.add_ExternalProcessorServicer_to_server
AuthorizationServicer = external_auth_pb2_grpc.AuthorizationServicer
add_AuthorizationServicer_to_server = external_auth_pb2_grpc.add_AuthorizationServicer_to_server
CheckRequest = external_auth_pb2.CheckRequest
CheckResponse = external_auth_pb2.CheckResponse

# The attribute namespace Envoy's ext_proc filter uses for `request_attributes`.
EXT_PROC_ATTRIBUTE_NAMESPACE = "envoy.filters.http.ext_proc"


class UnsupportedMessage(ValueError):
    """A ProcessingRequest with no phase Weir handles (none is set)."""


def _headers(header_map: base_pb2.HeaderMap) -> Headers:
    # Envoy fills raw_value (bytes); older builds filled value. Header bytes are
    # not guaranteed UTF-8, so undecodable bytes become U+FFFD rather than an error.
    return tuple(
        (h.key, h.raw_value.decode("utf-8", "replace") if h.raw_value else h.value)
        for h in header_map.headers
    )


def _attributes(request: ext_proc_pb2.ProcessingRequest) -> dict[str, object]:
    if EXT_PROC_ATTRIBUTE_NAMESPACE not in request.attributes:
        return {}
    attributes = json_format.MessageToDict(request.attributes[EXT_PROC_ATTRIBUTE_NAMESPACE])
    node = attributes.get("xds.node")
    if isinstance(node, str):
        attributes["xds.node"] = node_from_text(node)
    return attributes


@functools.lru_cache(maxsize=16)
def node_from_text(text: str) -> dict[str, object]:
    """`xds.node` as a dict; Envoy 1.40 sends it as the Node message in protobuf *text* format.

    The text is the same on every request of one proxy (and several KB long,
    listing every extension), so it is parsed once and cached. Unparseable
    text yields an empty dict: the node-metadata source then finds nothing
    and the caller is unauthenticated, which fails closed.
    """
    node = base_pb2.Node()
    try:
        text_format.Parse(text, node, allow_unknown_field=True)
    except text_format.ParseError:
        return {}
    return {"id": node.id, "cluster": node.cluster,
            "metadata": json_format.MessageToDict(node.metadata)}


def decode_request(request: ext_proc_pb2.ProcessingRequest) -> Event:
    phase = request.WhichOneof("request")
    if phase == "request_headers":
        h = request.request_headers
        return HeadersEvent(
            Direction.REQUEST, _headers(h.headers), h.end_of_stream, _attributes(request)
        )
    if phase == "response_headers":
        h = request.response_headers
        return HeadersEvent(
            Direction.RESPONSE, _headers(h.headers), h.end_of_stream, _attributes(request)
        )
    if phase == "request_body":
        b = request.request_body
        return BodyEvent(Direction.REQUEST, b.body, b.end_of_stream)
    if phase == "response_body":
        b = request.response_body
        return BodyEvent(Direction.RESPONSE, b.body, b.end_of_stream)
    if phase == "request_trailers":
        return TrailersEvent(Direction.REQUEST, _headers(request.request_trailers.trailers))
    if phase == "response_trailers":
        return TrailersEvent(Direction.RESPONSE, _headers(request.response_trailers.trailers))
    raise UnsupportedMessage(f"ProcessingRequest without a known phase ({phase!r})")


def _header_mutation(
    mutation: ext_proc_pb2.HeaderMutation, set_headers: Headers, remove: Iterable[str]
) -> None:
    for key, value in set_headers:
        option = mutation.set_headers.add()
        option.header.key = key
        option.header.raw_value = value.encode()
        option.append_action = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
    mutation.remove_headers.extend(remove)


def encode_action(action: Action) -> ext_proc_pb2.ProcessingResponse:
    response = ext_proc_pb2.ProcessingResponse()
    if isinstance(action, StreamBody):
        phase = (
            response.request_body
            if action.direction is Direction.REQUEST
            else response.response_body
        )
        streamed = phase.response.body_mutation.streamed_response
        streamed.body = action.chunk
        streamed.end_of_stream = action.end_of_stream
    elif isinstance(action, ContinueHeaders):
        phase = (
            response.request_headers
            if action.direction is Direction.REQUEST
            else response.response_headers
        )
        # Touch `response` so the oneof is set even without mutations.
        phase.response.SetInParent()
        if action.set_headers or action.remove_headers:
            _header_mutation(
                phase.response.header_mutation, action.set_headers, action.remove_headers
            )
    elif isinstance(action, ContinueTrailers):
        trailers = (
            response.request_trailers
            if action.direction is Direction.REQUEST
            else response.response_trailers
        )
        trailers.SetInParent()
    elif isinstance(action, Respond):
        immediate = response.immediate_response
        if action.status not in _KNOWN_STATUSES:
            raise ValueError(f"HTTP status {action.status} has no envoy.type.v3.StatusCode")
        immediate.status.code = action.status  # type: ignore[assignment]
        immediate.body = action.body
        immediate.details = action.details
        _header_mutation(immediate.headers, action.headers, ())
    else:  # pragma: no cover - the Action union is closed
        raise TypeError(f"unknown action {action!r}")
    return response


# envoy.type.v3.StatusCode numbers its values by the HTTP status itself.
_KNOWN_STATUSES = frozenset(http_status_pb2.StatusCode.values())
