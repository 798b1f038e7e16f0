"""Requests Weir does not recognise by path: sniffed bodies, AI hosts, unknown APIs.

The exchange state machine driven with plain events, as in test_stream.py.
"""

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
from extproc.stream import Exchange, ExchangeConfig
from mesh.policy import parse_policy

REQ = Direction.REQUEST
CHECKOUT = "spiffe://cluster.local/ns/payments/sa/checkout"
RESEARCHER = "spiffe://cluster.local/ns/research/sa/notebook"
AWS_KEY = "AKIAQ3EGUKZW5XYT7M2P"
FORWARD_LLM = ContinueHeaders(REQ, set_headers=(("accept-encoding", "identity"),))

POLICY_YAML = """
trustDomain: cluster.local
defaultAction: deny
identitySources: [peer-certificate]
aiHosts: ["llm.internal"]
workloads:
  - name: payments-checkout
    match: ["spiffe://cluster.local/ns/payments/sa/checkout"]
    models: ["gpt-4o", "claude-*"]
    request: [{scanner: secrets, action: block}]
  - name: research
    match: ["spiffe://cluster.local/ns/research/*"]
    unknownApis: allow
"""


def policy(mode: str = "enforce"):
    return parse_policy(POLICY_YAML + f"mode: {mode}\n", "test-policy.yaml")


def headers(
    path: str,
    *,
    peer: str = CHECKOUT,
    authority: str = "billing.payments.svc",
    method: str = "POST",
    end_of_stream: bool = False,
    extra: tuple[tuple[str, str], ...] = (),
) -> HeadersEvent:
    hs = ((":method", method), (":path", path), (":authority", authority), *extra)
    return HeadersEvent(REQ, hs, end_of_stream, {"connection.uri_san_peer_certificate": peer})


def chat(model: str = "gpt-4o", content: str = "hi") -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": content}]}).encode()


def feed(exchange: Exchange, events: list[Event]) -> list:
    """The actions for `events`, up to a local reply (Envoy sends nothing after one)."""
    out: list = []
    for event in events:
        if exchange.closed:
            break
        out.extend(exchange.receive(event))
    return out


def forwarded(actions: list) -> bytes:
    return b"".join(a.chunk for a in actions if isinstance(a, StreamBody))


# --- LLM calls recognised by their path's normal form ------------------------------


def test_a_percent_encoded_chat_path_with_a_forbidden_model_is_refused_after_the_body() -> None:
    exchange = Exchange(policy())
    assert exchange.receive(headers("/v1/chat/%63ompletions")) == []
    [refusal] = exchange.receive(BodyEvent(REQ, chat("gpt-5"), True))
    assert isinstance(refusal, Respond) and refusal.status == 403
    assert "gpt-5" in json.loads(refusal.body)["error"]["message"]
    record = exchange.record
    assert (record.provider, record.recognised_by, record.verdict) == (
        "openai.chat_completions", "path", "deny"
    )
    assert record.api_path == "/v1/chat/completions"


# --- LLM calls recognised by their body's shape --------------------------------------


@pytest.mark.parametrize("path", ["/proxy/llm", "/v2/generate?x=1", "/"])
def test_an_llm_shaped_body_on_an_unknown_path_with_a_forbidden_model_is_refused(
    path: str,
) -> None:
    exchange = Exchange(policy())
    actions = feed(exchange, [headers(path), BodyEvent(REQ, chat("gpt-5"), True)])
    [refusal] = actions  # nothing forwarded: the headers were withheld too
    assert isinstance(refusal, Respond) and refusal.status == 403
    assert exchange.record.recognised_by == "body"
    assert exchange.record.provider == "openai.chat_completions"
    assert exchange.record.model == "gpt-5"


def test_a_secret_in_an_llm_shaped_body_on_an_unknown_path_is_blocked() -> None:
    exchange = Exchange(policy())
    body = chat(content=f"my key is {AWS_KEY}")
    actions = feed(exchange, [headers("/internal/ask"), BodyEvent(REQ, body[:20], False),
                              BodyEvent(REQ, body[20:], True)])
    [refusal] = actions
    assert isinstance(refusal, Respond) and refusal.status == 403
    assert AWS_KEY.encode() not in refusal.body
    assert exchange.record.findings and exchange.record.verdict == "deny"


def test_an_allowed_llm_shaped_body_is_forwarded_whole_after_judgement() -> None:
    exchange = Exchange(policy())
    body = chat()
    actions = feed(exchange, [headers("/internal/ask"), BodyEvent(REQ, body, True)])
    assert actions[0] == FORWARD_LLM
    assert forwarded(actions) == body
    assert exchange.record.verdict == "allow"


def test_an_anthropic_version_header_picks_the_anthropic_adapter_and_error_shape() -> None:
    exchange = Exchange(policy())
    body = json.dumps(
        {"model": "gpt-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    event = headers("/anthropic/proxy", extra=(("anthropic-version", "2023-06-01"),))
    [refusal] = feed(exchange, [event, BodyEvent(REQ, body, True)])
    assert isinstance(refusal, Respond)
    assert json.loads(refusal.body)["type"] == "error"
    assert exchange.record.provider == "anthropic.messages"


def test_an_llm_shaped_body_ended_by_trailers_is_judged() -> None:
    exchange = Exchange(policy())
    actions = feed(
        exchange, [headers("/x"), BodyEvent(REQ, chat("gpt-5"), False), TrailersEvent(REQ, ())]
    )
    [refusal] = actions
    assert isinstance(refusal, Respond) and refusal.status == 403


# --- ordinary traffic ------------------------------------------------------------


def test_a_non_json_upload_is_released_at_its_first_chunk_and_streams_untouched() -> None:
    exchange = Exchange(policy())
    assert exchange.receive(headers("/upload")) == []
    first = exchange.receive(BodyEvent(REQ, b"\x89PNG\r\n\x1a\n", False))
    assert first == [ContinueHeaders(REQ), StreamBody(REQ, b"\x89PNG\r\n\x1a\n", False)]
    assert exchange.receive(BodyEvent(REQ, b"{rest", True)) == [StreamBody(REQ, b"{rest", True)]
    assert exchange.record.verdict == "allow" and exchange.record.provider is None


def test_ordinary_json_is_held_until_whole_then_forwarded_byte_for_byte() -> None:
    exchange = Exchange(policy())
    body = b'{ "event": "paid", "input": {"amount": 3}, "modelVersion": 2 }\n'
    assert exchange.receive(headers("/events")) == []
    assert exchange.receive(BodyEvent(REQ, body[:10], False)) == []
    actions = exchange.receive(BodyEvent(REQ, body[10:], True))
    assert actions == [ContinueHeaders(REQ), StreamBody(REQ, body, True)]
    assert exchange.record.recognised_by is None and exchange.record.verdict == "allow"


def test_ordinary_json_ended_by_trailers_is_forwarded_then_the_trailers() -> None:
    exchange = Exchange(policy())
    actions = feed(
        exchange, [headers("/events"), BodyEvent(REQ, b'{"a": 1}', False), TrailersEvent(REQ, ())]
    )
    assert actions == [
        ContinueHeaders(REQ), StreamBody(REQ, b'{"a": 1}', False), ContinueTrailers(REQ)
    ]


def test_a_get_to_an_ordinary_host_passes_at_once() -> None:
    exchange = Exchange(policy())
    assert exchange.receive(headers("/health", method="GET", end_of_stream=True)) == [
        ContinueHeaders(REQ)
    ]


def test_a_compressed_body_to_an_ordinary_host_flows_unsniffed() -> None:
    exchange = Exchange(policy())
    event = headers("/upload", extra=(("content-encoding", "gzip"),))
    assert exchange.receive(event) == [ContinueHeaders(REQ)]
    gzip_bytes = b"\x1f\x8b"
    assert exchange.receive(BodyEvent(REQ, gzip_bytes, True)) == [StreamBody(REQ, gzip_bytes, True)]


# --- known AI hosts -----------------------------------------------------------------


@pytest.mark.parametrize("authority", ["api.openai.com", "llm.internal:8000", "x.openai.azure.com"])
def test_an_unknown_api_on_an_ai_host_is_a_json_404(authority: str) -> None:
    exchange = Exchange(policy())
    [refusal] = exchange.receive(
        headers("/v1/models", method="GET", authority=authority, end_of_stream=True)
    )
    assert isinstance(refusal, Respond) and refusal.status == 404
    message = json.loads(refusal.body)["error"]["message"]
    assert "unknownApis: allow" in message and "payments-checkout" in message
    assert exchange.record.verdict == "deny" and exchange.record.ai_host


def test_a_non_llm_body_to_an_ai_host_is_a_404_and_never_forwarded() -> None:
    exchange = Exchange(policy())
    actions = feed(
        exchange,
        [headers("/v1/embeddingz", authority="api.openai.com"),
         BodyEvent(REQ, b'{"data": "x"}', True)],
    )
    [refusal] = actions
    assert isinstance(refusal, Respond) and refusal.status == 404


def test_an_anthropic_host_refusal_is_in_anthropic_shape_when_the_client_speaks_it() -> None:
    exchange = Exchange(policy())
    event = headers("/v1/models", method="GET", authority="api.anthropic.com",
                    end_of_stream=True, extra=(("anthropic-version", "2023-06-01"),))
    [refusal] = exchange.receive(event)
    assert isinstance(refusal, Respond)
    assert json.loads(refusal.body)["error"]["type"] == "not_found_error"


def test_unknown_apis_allow_lets_an_unknown_api_through_and_records_it() -> None:
    exchange = Exchange(policy())
    body = b'{"purpose": "fine-tune"}'
    actions = feed(
        exchange,
        [headers("/v1/files", peer=RESEARCHER, authority="api.openai.com"),
         BodyEvent(REQ, body, True)],
    )
    assert actions == [ContinueHeaders(REQ), StreamBody(REQ, body, True)]
    record = exchange.record
    assert record.verdict == "allow" and "unknownApis" in record.reason
    assert record.authority == "api.openai.com" and record.ai_host


def test_a_provider_prefixed_api_path_on_an_ai_host_is_judged_as_that_api() -> None:
    exchange = Exchange(policy())
    actions = feed(
        exchange,
        [headers("/openai/deployments/prod/chat/completions?api-version=1",
                 authority="x.openai.azure.com"),
         BodyEvent(REQ, chat("gpt-5"), True)],
    )
    [refusal] = actions
    assert isinstance(refusal, Respond) and refusal.status == 403
    assert exchange.record.recognised_by == "path"


def test_audit_mode_records_an_unknown_api_and_lets_it_through() -> None:
    exchange = Exchange(policy("audit"))
    actions = exchange.receive(
        headers("/v1/models", method="GET", authority="api.openai.com", end_of_stream=True)
    )
    assert actions == [ContinueHeaders(REQ)]
    assert exchange.record.verdict == "audit"


def test_a_compressed_body_to_an_ai_host_is_an_unknown_api() -> None:
    exchange = Exchange(policy())
    event = headers("/v1/chat/x", authority="api.openai.com", extra=(("content-encoding", "br"),))
    [refusal] = exchange.receive(event)
    assert isinstance(refusal, Respond) and refusal.status == 404


# --- LLM calls in APIs no adapter reads ------------------------------------------------


def test_a_legacy_prompt_call_has_its_model_judged_first() -> None:
    exchange = Exchange(policy())
    body = json.dumps({"model": "gpt-5", "prompt": "Say hi"}).encode()
    [refusal] = feed(exchange, [headers("/v1/completions"), BodyEvent(REQ, body, True)])
    assert isinstance(refusal, Respond) and refusal.status == 403


def test_a_legacy_prompt_call_with_an_allowed_model_is_an_unknown_api() -> None:
    exchange = Exchange(policy())
    body = json.dumps({"model": "gpt-4o", "prompt": "Say hi"}).encode()
    [refusal] = feed(exchange, [headers("/v1/completions"), BodyEvent(REQ, body, True)])
    assert isinstance(refusal, Respond) and refusal.status == 404
    assert "does not read" in json.loads(refusal.body)["error"]["message"]


def test_unknown_apis_allow_lets_a_legacy_prompt_call_through_unchanged() -> None:
    exchange = Exchange(policy())
    body = json.dumps({"model": "any", "prompt": "Say hi"}).encode()
    actions = feed(exchange, [headers("/v1/completions", peer=RESEARCHER),
                              BodyEvent(REQ, body, True)])
    assert actions == [ContinueHeaders(REQ), StreamBody(REQ, body, True)]
    assert exchange.record.model == "any" and exchange.record.recognised_by == "body"


# --- bodies past the sniff limit ---------------------------------------------------------

LIMIT = 1000


def oversize(events: list[Event], mode: str = "enforce") -> tuple[Exchange, list]:
    exchange = Exchange(policy(mode), ExchangeConfig(max_request_body=LIMIT))
    return exchange, feed(exchange, events)


def chunks(body: bytes, size: int = 300) -> list[Event]:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return [BodyEvent(REQ, p, i == len(pieces) - 1) for i, p in enumerate(pieces)]


def test_a_large_ordinary_json_upload_streams_through_byte_for_byte() -> None:
    body = json.dumps({"rows": [{"id": i, "name": f"row {i}"} for i in range(200)]}).encode()
    body += b"\n"
    exchange, actions = oversize([headers("/bulk"), *chunks(body)])
    assert actions[0] == ContinueHeaders(REQ)
    assert forwarded(actions) == body
    ends = [a.end_of_stream for a in actions if isinstance(a, StreamBody)]
    assert ends[-1] and not any(ends[:-1])
    assert exchange.record.verdict == "allow"


def test_a_large_json_upload_flows_as_it_comes_and_its_closing_chunk_after_its_verdict() -> None:
    body = json.dumps({"blob": "x" * 3000}).encode() + b"  \n"
    events = chunks(body)
    exchange = Exchange(policy(), ExchangeConfig(max_request_body=LIMIT))
    closing = next(i for i, e in enumerate(events) if b"}" in e.chunk)  # type: ignore[union-attr]
    released = forwarded(feed(exchange, [headers("/bulk"), *events[:closing]]))
    assert body.startswith(released) and len(released) > LIMIT and b"}" not in released
    rest = forwarded(feed(exchange, events[closing:]))
    assert released + rest == body


def test_an_llm_call_padded_past_the_limit_is_refused_before_the_upstream_has_it_whole() -> None:
    body = json.dumps(
        {"pad": "x" * 3000, "model": "gpt-4o", "messages": [{"role": "user", "content": AWS_KEY}]}
    ).encode()
    exchange, actions = oversize([headers("/bulk"), *chunks(body)])
    assert isinstance(actions[-1], Respond) and actions[-1].status == 413
    sent = forwarded(actions)
    assert len(sent) < len(body) and body.startswith(sent)
    with pytest.raises(json.JSONDecodeError):
        json.loads(sent)
    assert exchange.record.verdict == "deny" and exchange.record.recognised_by == "body"


def test_an_escaped_model_key_does_not_hide_a_padded_llm_call() -> None:
    body = b'{"pad": "' + b"x" * 3000 + b'", "mod\\u0065l": "m", "input": "hi"}'
    _, actions = oversize([headers("/bulk"), *chunks(body, 7)])
    assert isinstance(actions[-1], Respond) and actions[-1].status == 413


@pytest.mark.parametrize("first_key", ["model", "messages"])
def test_a_large_body_that_opens_like_an_llm_call_is_a_413_at_the_limit(first_key: str) -> None:
    body = json.dumps({first_key: "gpt-4o", "pad": "x" * 3000}).encode()
    _, actions = oversize([headers("/bulk"), *chunks(body)])
    [refusal] = actions
    assert isinstance(refusal, Respond) and refusal.status == 413


def test_a_large_json_body_to_an_ai_host_is_a_413() -> None:
    body = json.dumps({"pad": "x" * 3000}).encode()
    _, actions = oversize([headers("/v1/files", authority="api.openai.com", peer=RESEARCHER),
                           *chunks(body)])
    [refusal] = actions
    assert isinstance(refusal, Respond) and refusal.status == 413


def test_a_large_utf16_json_body_is_a_413_since_its_keys_cannot_be_read_as_bytes() -> None:
    body = json.dumps({"pad": "x" * 3000}).encode("utf-16")
    _, actions = oversize([headers("/bulk"), *chunks(body)])
    [refusal] = actions
    assert isinstance(refusal, Respond) and refusal.status == 413


def test_a_large_json_upload_ended_by_trailers_releases_its_tail_then_the_trailers() -> None:
    body = json.dumps({"blob": "x" * 3000}).encode()
    events = [BodyEvent(REQ, e.chunk, False) for e in chunks(body) if isinstance(e, BodyEvent)]
    _, actions = oversize([headers("/bulk"), *events, TrailersEvent(REQ, ())])
    assert forwarded(actions) == body
    assert actions[-1] == ContinueTrailers(REQ)


@pytest.mark.parametrize(
    ("method", "extra"),
    [
        ("CONNECT", ()),
        ("GET", (("upgrade", "websocket"), ("connection", "upgrade"))),
        ("POST", (("content-type", "application/grpc+proto"),)),
    ],
    ids=["connect", "websocket", "grpc"],
)
def test_tunnels_and_grpc_streams_are_released_at_their_headers(
    method: str, extra: tuple[tuple[str, str], ...]
) -> None:
    # Their clients may wait for the server before sending a byte: holding the headers
    # for a first body chunk would hang them.
    exchange = Exchange(policy())
    assert exchange.receive(headers("/chat", method=method, extra=extra)) == [ContinueHeaders(REQ)]
    assert exchange.receive(BodyEvent(REQ, b"{}", False)) == [StreamBody(REQ, b"{}", False)]
    assert "not sniffed" in exchange.record.reason


def test_a_grpc_stream_to_an_ai_host_is_an_unknown_api() -> None:
    exchange = Exchange(policy())
    event = headers("/google.cloud.aiplatform.v1.PredictionService/GenerateContent",
                    authority="us-central1-aiplatform.googleapis.com",
                    extra=(("content-type", "application/grpc"),))
    [refusal] = exchange.receive(event)
    assert isinstance(refusal, Respond) and refusal.status == 404


def test_an_llm_call_spelled_in_another_case_is_an_api_weir_cannot_read() -> None:
    exchange = Exchange(policy())
    body = json.dumps({"Model": "gpt-5", "Messages": [{"Role": "user", "Content": "hi"}]})
    [refusal] = feed(exchange, [headers("/api/chat"), BodyEvent(REQ, body.encode(), True)])
    assert isinstance(refusal, Respond) and refusal.status == 404
    message = json.loads(refusal.body)["error"]["message"]
    assert "billing.payments.svc" in message and "AI host" not in message


def test_an_llm_call_padded_in_another_case_is_refused_at_its_end() -> None:
    body = b'{"pad": "' + b"x" * 3000 + b'", "MODEL": "m", "Input": "hi"}'
    _, actions = oversize([headers("/bulk"), *chunks(body)])
    assert isinstance(actions[-1], Respond) and actions[-1].status == 413


def test_whitespace_before_a_json_object_is_held_across_chunks() -> None:
    exchange = Exchange(policy())
    events: list[Event] = [headers("/x"), BodyEvent(REQ, b"  \n", False),
                           BodyEvent(REQ, b"\t", False), BodyEvent(REQ, chat("gpt-5"), True)]
    [refusal] = feed(exchange, events)
    assert isinstance(refusal, Respond) and refusal.status == 403


def test_an_embeddings_call_is_an_llm_call_whose_model_must_be_allowed() -> None:
    exchange = Exchange(policy())
    body = json.dumps({"model": "text-embedding-3-small", "input": ["a", "b"]}).encode()
    [refusal] = feed(exchange, [headers("/v1/embeddings"), BodyEvent(REQ, body, True)])
    assert isinstance(refusal, Respond) and refusal.status == 403
    assert exchange.record.provider == "openai.responses"


def test_an_llm_call_on_an_unknown_path_of_an_ai_host_is_judged_not_refused_as_unknown() -> None:
    exchange = Exchange(policy())
    body = chat()
    actions = feed(exchange, [headers("/v2/beta/ask", authority="api.mistral.ai"),
                              BodyEvent(REQ, body, True)])
    assert actions[0] == FORWARD_LLM and forwarded(actions) == body
    assert exchange.record.recognised_by == "body" and exchange.record.ai_host


def test_a_large_json_upload_with_megabytes_of_trailing_whitespace_holds_nothing_back() -> None:
    body = json.dumps({"blob": "x" * 3000}).encode() + b" " * 5000
    events = chunks(body)
    exchange = Exchange(policy(), ExchangeConfig(max_request_body=LIMIT))
    released = forwarded(feed(exchange, [headers("/bulk"), *events[:-1]]))
    last = events[-1]
    assert isinstance(last, BodyEvent)
    assert released == body[: len(body) - len(last.chunk)]


def test_a_second_concatenated_object_that_makes_an_llm_call_is_refused_as_it_closes() -> None:
    body = json.dumps({"pad": "x" * 3000}).encode() + b'{"model": "m", "messages": []}'
    _, actions = oversize([headers("/bulk"), *chunks(body)])
    assert isinstance(actions[-1], Respond) and actions[-1].status == 413
