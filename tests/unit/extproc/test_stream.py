"""The exchange state machine, driven with plain events: no gRPC, no sockets."""

from __future__ import annotations

import json

import pytest

from extproc.events import (
    BodyEvent,
    ContinueHeaders,
    ContinueTrailers,
    Direction,
    Event,
    HeadersEvent,
    Respond,
    StreamBody,
    TrailersEvent,
)
from extproc.stream import MAX_EMITTED_CHUNK, Exchange, ExchangeConfig, ProtocolError
from mesh.policy import parse_policy

REQ, RESP = Direction.REQUEST, Direction.RESPONSE
# What an allowed LLM request's headers answer carries: upstreams are asked for identity
# encoding so that the response can be scanned as text.
FORWARD_LLM_HEADERS = ContinueHeaders(REQ, set_headers=(("accept-encoding", "identity"),))
CHECKOUT = "spiffe://cluster.local/ns/payments/sa/checkout"
RESEARCHER = "spiffe://cluster.local/ns/research/sa/notebook"
STRANGER = "spiffe://cluster.local/ns/unknown/sa/stranger"

POLICY_YAML = """
trustDomain: cluster.local
defaultAction: deny
identitySources: [peer-certificate]
workloads:
  - name: payments-checkout
    match: ["spiffe://cluster.local/ns/payments/sa/checkout"]
    models: ["gpt-4o", "gpt-4o-mini", "claude-*"]
  - name: research
    match: ["spiffe://cluster.local/ns/research/*"]
"""


def policy(mode: str = "enforce"):
    return parse_policy(POLICY_YAML + f"mode: {mode}\n", "test-policy.yaml")


def request_headers(
    peer: str | None,
    path: str = "/v1/chat/completions",
    method: str = "POST",
    end_of_stream: bool = False,
    extra: tuple[tuple[str, str], ...] = (),
) -> HeadersEvent:
    attributes = {"connection.uri_san_peer_certificate": peer} if peer else {}
    headers = ((":method", method), (":path", path), (":authority", "llm"), *extra)
    return HeadersEvent(REQ, headers, end_of_stream, attributes)


def chat_body(model: str = "gpt-4o", stream: bool = True) -> bytes:
    return json.dumps(
        {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()


def feed(exchange: Exchange, events: list[Event]) -> list:
    actions: list = []
    for event in events:
        actions.extend(exchange.receive(event))
    return actions


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 10_000], ids=lambda n: f"{n}-byte-chunks")
def test_an_allowed_llm_request_is_held_until_its_whole_body_is_judged(chunk_size: int) -> None:
    body = chat_body()
    exchange = Exchange(policy())
    assert exchange.receive(request_headers(CHECKOUT)) == []
    pieces = split(body, chunk_size)
    for piece in pieces[:-1]:
        assert exchange.receive(BodyEvent(REQ, piece, False)) == []
    actions = exchange.receive(BodyEvent(REQ, pieces[-1], True))
    assert actions == [FORWARD_LLM_HEADERS, StreamBody(REQ, body, True)]
    assert exchange.record.verdict == "allow"
    assert exchange.record.model == "gpt-4o"
    assert exchange.record.stream is True
    assert exchange.record.workload == "payments-checkout"


def test_an_unknown_identity_is_refused_at_the_headers_in_openai_format() -> None:
    exchange = Exchange(policy())
    [action] = exchange.receive(request_headers(STRANGER))
    assert isinstance(action, Respond)
    assert action.status == 403
    error = json.loads(action.body)["error"]
    assert error["code"] == "weir_policy_denied"
    assert "defaultAction" in error["message"] or "no workload" in error["message"]
    assert exchange.closed
    assert exchange.record.verdict == "deny"


def test_a_missing_peer_certificate_is_the_unauthenticated_principal_and_denied() -> None:
    exchange = Exchange(policy())
    [action] = exchange.receive(request_headers(None))
    assert isinstance(action, Respond) and action.status == 403
    assert exchange.record.principal == "unauthenticated"


def test_an_anthropic_refusal_uses_anthropics_error_shape() -> None:
    exchange = Exchange(policy())
    [action] = exchange.receive(request_headers(STRANGER, path="/v1/messages"))
    assert isinstance(action, Respond)
    document = json.loads(action.body)
    assert document["type"] == "error"
    assert document["error"]["type"] == "permission_error"


def test_a_disallowed_model_is_refused_after_the_body_and_nothing_was_forwarded() -> None:
    exchange = Exchange(policy())
    actions = feed(
        exchange, [request_headers(CHECKOUT), BodyEvent(REQ, chat_body("gpt-5"), True)]
    )
    assert len(actions) == 1 and isinstance(actions[0], Respond)
    assert actions[0].status == 403
    assert "gpt-5" in json.loads(actions[0].body)["error"]["message"]
    assert not any(isinstance(a, (ContinueHeaders, StreamBody)) for a in actions)


def test_a_workload_without_a_models_list_may_use_any_model() -> None:
    exchange = Exchange(policy())
    actions = feed(
        exchange, [request_headers(RESEARCHER), BodyEvent(REQ, chat_body("o3-pro"), True)]
    )
    assert actions[0] == FORWARD_LLM_HEADERS


@pytest.mark.parametrize(
    ("body", "message_part"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b"[1, 2]", "JSON object"),
        (b'{"messages": []}', "'model' is required"),
        (b'{"model": 4}', "'model' is required"),
        (b'{"model": "gpt-4o", "stream": "yes"}', "'stream' must be a boolean"),
        (b"[" * 10_000 + b"]" * 10_000, "nests deeper"),
        (b"", "empty"),
    ],
    ids=["malformed", "invalid-utf8", "not-an-object", "no-model", "model-not-string",
         "stream-not-bool", "deeply-nested", "empty"],
)
def test_a_body_that_cannot_be_judged_gets_a_400_in_provider_format(
    body: bytes, message_part: str
) -> None:
    exchange = Exchange(policy())
    actions = feed(exchange, [request_headers(CHECKOUT), BodyEvent(REQ, body, True)])
    [action] = actions
    assert isinstance(action, Respond) and action.status == 400
    assert message_part in json.loads(action.body)["error"]["message"]
    assert exchange.record.verdict == "error"


def test_an_llm_call_whose_headers_end_the_stream_is_a_400() -> None:
    exchange = Exchange(policy())
    [action] = exchange.receive(request_headers(CHECKOUT, end_of_stream=True))
    assert isinstance(action, Respond) and action.status == 400


def test_a_body_over_the_limit_is_a_413_as_soon_as_it_crosses_the_limit() -> None:
    exchange = Exchange(policy(), ExchangeConfig(max_request_body=100))
    exchange.receive(request_headers(CHECKOUT))
    assert exchange.receive(BodyEvent(REQ, b"x" * 60, False)) == []
    [action] = exchange.receive(BodyEvent(REQ, b"x" * 60, False))
    assert isinstance(action, Respond) and action.status == 413
    assert exchange.closed
    with pytest.raises(ProtocolError):
        exchange.receive(BodyEvent(REQ, b"x", True))


def test_a_large_allowed_body_is_emitted_in_chunks_with_end_of_stream_only_on_the_last() -> None:
    padding = "a" * (3 * MAX_EMITTED_CHUNK)
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": padding}]})
    exchange = Exchange(policy())
    actions = feed(exchange, [request_headers(CHECKOUT), BodyEvent(REQ, body.encode(), True)])
    chunks = [a for a in actions if isinstance(a, StreamBody)]
    assert len(chunks) == 4
    assert b"".join(c.chunk for c in chunks) == body.encode()
    assert [c.end_of_stream for c in chunks] == [False, False, False, True]
    assert all(len(c.chunk) <= MAX_EMITTED_CHUNK for c in chunks)


def test_a_get_without_a_body_passes_for_an_allowed_identity() -> None:
    exchange = Exchange(policy())
    actions = exchange.receive(
        request_headers(CHECKOUT, path="/v1/models", method="GET", end_of_stream=True)
    )
    assert actions == [ContinueHeaders(REQ)]
    assert exchange.record.provider is None
    assert exchange.record.verdict == "allow"


def test_a_non_llm_request_body_streams_through_chunk_by_chunk() -> None:
    exchange = Exchange(policy())
    actions = feed(
        exchange,
        [
            request_headers(CHECKOUT, path="/v1/files"),
            BodyEvent(REQ, b"part1", False),
            BodyEvent(REQ, b"part2", True),
        ],
    )
    assert actions == [
        ContinueHeaders(REQ),
        StreamBody(REQ, b"part1", False),
        StreamBody(REQ, b"part2", True),
    ]


def test_request_trailers_complete_a_buffered_body() -> None:
    exchange = Exchange(policy())
    actions = feed(
        exchange,
        [
            request_headers(CHECKOUT),
            BodyEvent(REQ, chat_body(), False),
            TrailersEvent(REQ, (("x-checksum", "1"),)),
        ],
    )
    assert actions == [
        FORWARD_LLM_HEADERS,
        StreamBody(REQ, chat_body(), False),
        ContinueTrailers(REQ),
    ]


def allowed_exchange() -> Exchange:
    exchange = Exchange(policy())
    feed(exchange, [request_headers(CHECKOUT), BodyEvent(REQ, chat_body(), True)])
    return exchange


def test_a_streamed_response_passes_through_with_end_of_stream_exactly_once() -> None:
    exchange = allowed_exchange()
    events: list[Event] = [HeadersEvent(RESP, ((":status", "200"),), False)]
    events += [BodyEvent(RESP, f"data: {i}\n\n".encode(), False) for i in range(5)]
    events.append(BodyEvent(RESP, b"", True))
    actions = feed(exchange, events)
    assert actions[0] == ContinueHeaders(RESP)
    bodies = [a for a in actions if isinstance(a, StreamBody)]
    assert b"".join(b.chunk for b in bodies) == b"".join(
        e.chunk for e in events if isinstance(e, BodyEvent)
    )
    assert [b.end_of_stream for b in bodies].count(True) == 1
    assert bodies[-1].end_of_stream
    assert exchange.record.status == 200
    with pytest.raises(ProtocolError):
        exchange.receive(BodyEvent(RESP, b"late", True))


def test_a_response_that_ends_with_trailers_sends_no_body_end_of_stream() -> None:
    exchange = allowed_exchange()
    actions = feed(
        exchange,
        [
            HeadersEvent(RESP, ((":status", "200"),), False),
            BodyEvent(RESP, b"chunk", False),
            TrailersEvent(RESP, (("grpc-status", "0"),)),
        ],
    )
    assert actions == [
        ContinueHeaders(RESP),
        StreamBody(RESP, b"chunk", False),
        ContinueTrailers(RESP),
    ]


def test_a_response_without_a_body_is_done_after_its_headers() -> None:
    exchange = allowed_exchange()
    assert exchange.receive(HeadersEvent(RESP, ((":status", "204"),), True)) == [
        ContinueHeaders(RESP)
    ]
    with pytest.raises(ProtocolError):
        exchange.receive(BodyEvent(RESP, b"late", True))


def test_a_duplicate_empty_end_of_stream_chunk_is_ignored_envoy_issue_46237() -> None:
    exchange = allowed_exchange()
    feed(exchange, [HeadersEvent(RESP, ((":status", "200"),), False),
                    BodyEvent(RESP, b"x" * 2_000_000, True)])
    assert exchange.receive(BodyEvent(RESP, b"", True)) == []


@pytest.mark.parametrize(
    "events",
    [
        [BodyEvent(REQ, b"x", True)],
        [TrailersEvent(REQ, ())],
        [BodyEvent(RESP, b"x", True)],
        [TrailersEvent(RESP, ())],
    ],
    ids=["request-body-first", "request-trailers-first", "response-body-first",
         "response-trailers-first"],
)
def test_events_out_of_protocol_order_are_protocol_errors(events: list[Event]) -> None:
    with pytest.raises(ProtocolError):
        feed(Exchange(policy()), events)


def test_request_headers_twice_are_a_protocol_error() -> None:
    exchange = Exchange(policy())
    exchange.receive(request_headers(CHECKOUT))
    with pytest.raises(ProtocolError):
        exchange.receive(request_headers(CHECKOUT))


def test_audit_mode_records_a_denial_but_lets_the_request_through() -> None:
    exchange = Exchange(policy(mode="audit"))
    actions = feed(
        exchange, [request_headers(STRANGER), BodyEvent(REQ, chat_body("gpt-5"), True)]
    )
    assert actions == [FORWARD_LLM_HEADERS, StreamBody(REQ, chat_body("gpt-5"), True)]
    assert exchange.record.verdict == "audit"


def test_a_client_forged_xfcc_header_does_not_change_a_peer_certificate_identity() -> None:
    forged = ("x-forwarded-client-cert", f"By=spiffe://cluster.local/ns/x/sa/y;URI={CHECKOUT}")
    exchange = Exchange(policy())
    [action] = exchange.receive(request_headers(STRANGER, extra=(forged,)))
    assert isinstance(action, Respond) and action.status == 403
    assert exchange.record.principal == STRANGER


def test_the_policy_is_captured_for_the_whole_exchange() -> None:
    captured = policy()
    exchange = Exchange(captured)
    exchange.receive(request_headers(CHECKOUT))
    assert exchange.record.policy_digest == captured.digest


AUDIT_RESPONSES_YAML = """
trustDomain: cluster.local
workloads:
  - name: payments-checkout
    match: ["spiffe://cluster.local/ns/payments/sa/checkout"]
    response:
      - {scanner: secrets, action: audit}
"""


def test_an_audit_only_stream_weir_cannot_read_is_recorded_not_scanned_not_as_an_error() -> None:
    exchange = Exchange(parse_policy(AUDIT_RESPONSES_YAML, "audit.yaml"))
    feed(exchange, [request_headers(CHECKOUT), BodyEvent(REQ, chat_body(), True)])
    sse = ((":status", "200"), ("content-type", "text/event-stream"))
    good = b'data: {"choices": [{"index": 0, "delta": {"content": "hi"}}]}\n\n'
    chunks = [good, b"data: {not json\n\n", good, b"data: [DONE]\n\n"]
    events: list[Event] = [HeadersEvent(RESP, sse, False)]
    events += [BodyEvent(RESP, chunk, False) for chunk in chunks]
    events.append(BodyEvent(RESP, b"", True))
    actions = feed(exchange, events)
    # The client received every byte unchanged: Weir only stopped reading.
    sent = b"".join(a.chunk for a in actions if isinstance(a, StreamBody))
    assert sent == b"".join(chunks)
    assert exchange.record.verdict == "allow"
    assert exchange.record.reason.startswith("not scanned: unreadable stream event")
