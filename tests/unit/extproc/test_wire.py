"""protos.wire: ProcessingRequest -> event and action -> ProcessingResponse."""

from __future__ import annotations

import pytest
from envoy.config.core.v3 import base_pb2
from google.protobuf import struct_pb2, text_format

from extproc.events import (
    BodyEvent,
    ContinueHeaders,
    ContinueTrailers,
    Direction,
    HeadersEvent,
    Respond,
    StreamBody,
    TrailersEvent,
)
from protos import wire

REQ, RESP = Direction.REQUEST, Direction.RESPONSE


def headers_request(**attributes: str) -> wire.ProcessingRequest:
    request = wire.ProcessingRequest()
    h = request.request_headers
    h.end_of_stream = False
    for key, value in ((":method", "POST"), (":path", "/v1/messages")):
        header = h.headers.headers.add()
        header.key, header.raw_value = key, value.encode()
    if attributes:
        struct = struct_pb2.Struct()
        struct.update(attributes)
        request.attributes[wire.EXT_PROC_ATTRIBUTE_NAMESPACE].CopyFrom(struct)
    return request


def test_request_headers_decode_with_raw_values_and_attributes() -> None:
    peer = "spiffe://cluster.local/ns/a/sa/b"
    event = wire.decode_request(headers_request(**{"connection.uri_san_peer_certificate": peer}))
    assert event == HeadersEvent(
        REQ,
        ((":method", "POST"), (":path", "/v1/messages")),
        False,
        {"connection.uri_san_peer_certificate": peer},
    )


def test_xds_node_in_envoys_text_format_decodes_to_its_metadata() -> None:
    node = base_pb2.Node(id="sidecar~10.0.0.1", cluster="checkout.payments")
    node.metadata.update({"NAMESPACE": "payments", "SERVICE_ACCOUNT": "checkout"})
    event = wire.decode_request(headers_request(**{"xds.node": text_format.MessageToString(node)}))
    assert isinstance(event, HeadersEvent)
    decoded = event.attributes["xds.node"]
    assert isinstance(decoded, dict)
    assert decoded["metadata"] == {"NAMESPACE": "payments", "SERVICE_ACCOUNT": "checkout"}


def test_unparseable_xds_node_text_decodes_to_nothing() -> None:
    event = wire.decode_request(headers_request(**{"xds.node": "metadata { fields {"}))
    assert isinstance(event, HeadersEvent)
    assert event.attributes["xds.node"] == {}


@pytest.mark.parametrize(
    ("phase", "expected"),
    [
        ("request_body", BodyEvent(REQ, b"abc", True)),
        ("response_body", BodyEvent(RESP, b"abc", True)),
    ],
)
def test_body_messages_decode_to_body_events(phase: str, expected: BodyEvent) -> None:
    request = wire.ProcessingRequest()
    body = getattr(request, phase)
    body.body, body.end_of_stream = b"abc", True
    assert wire.decode_request(request) == expected


def test_trailers_decode_to_trailers_events() -> None:
    request = wire.ProcessingRequest()
    trailer = request.response_trailers.trailers.headers.add()
    trailer.key, trailer.raw_value = "grpc-status", b"0"
    assert wire.decode_request(request) == TrailersEvent(RESP, (("grpc-status", "0"),))


def test_an_empty_processing_request_is_unsupported() -> None:
    with pytest.raises(wire.UnsupportedMessage):
        wire.decode_request(wire.ProcessingRequest())


def test_stream_body_encodes_as_a_streamed_response_mutation() -> None:
    response = wire.encode_action(StreamBody(RESP, b"data: x\n\n", True))
    streamed = response.response_body.response.body_mutation.streamed_response
    assert streamed.body == b"data: x\n\n" and streamed.end_of_stream


def test_continue_headers_sets_the_phase_even_without_mutations() -> None:
    response = wire.encode_action(ContinueHeaders(REQ))
    assert response.WhichOneof("response") == "request_headers"
    assert not response.request_headers.response.HasField("header_mutation")


def test_continue_headers_carries_header_mutations() -> None:
    response = wire.encode_action(
        ContinueHeaders(REQ, set_headers=(("accept-encoding", "identity"),),
                        remove_headers=("x-secret",))
    )
    mutation = response.request_headers.response.header_mutation
    assert mutation.set_headers[0].header.key == "accept-encoding"
    assert mutation.set_headers[0].header.raw_value == b"identity"
    assert list(mutation.remove_headers) == ["x-secret"]


def test_continue_trailers_sets_the_trailers_phase() -> None:
    assert wire.encode_action(ContinueTrailers(RESP)).WhichOneof("response") == "response_trailers"


def test_respond_encodes_an_immediate_response() -> None:
    response = wire.encode_action(
        Respond(403, b'{"error": {}}', (("content-type", "application/json"),), "weir_denied")
    )
    immediate = response.immediate_response
    assert immediate.status.code == 403
    assert immediate.body == b'{"error": {}}'
    assert immediate.details == "weir_denied"
    assert immediate.headers.set_headers[0].header.raw_value == b"application/json"


def test_respond_with_a_status_envoy_cannot_express_is_an_error() -> None:
    with pytest.raises(ValueError):
        wire.encode_action(Respond(299, b""))
