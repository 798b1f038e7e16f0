"""Every string is scanned, unplaceable structure fails closed, held text has one way out.

One test (at least) per class of input that once reached the client or the upstream
unscanned: driven through `SseGuard` with SSE bytes, and through `Exchange` for whole
documents (requests, non-streamed answers, the upstream's error replies).
"""

from __future__ import annotations

import json

import pytest

from extproc.events import BodyEvent, Direction, HeadersEvent, Respond, StreamBody
from extproc.llm import PROVIDERS
from extproc.llm.strings import STRUCTURAL, StructureError, sweep
from extproc.scan_plan import plan_for
from extproc.sse import SseParser
from extproc.sse_guard import SseGuard
from extproc.stream import Exchange
from mesh.policy import ScanRule, parse_policy

CHAT, RESPONSES, ANTHROPIC = PROVIDERS
AWS_KEY = "AKIAQ3EGUKZW5XYT7M2P"
REDACTED = "[REDACTED:aws-access-key-id]"


def guard(provider, action: str = "redact") -> SseGuard:
    plan = plan_for((ScanRule("secrets", action),), enforcing=True)
    assert plan is not None
    return SseGuard(provider, plan)


def sse(payload: dict, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(payload)}\n\n".encode()


def chat(delta: dict, index: object = 0, **extra: object) -> bytes:
    return sse({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
                "choices": [{"index": index, "delta": delta, "finish_reason": None, **extra}]})


def released(provider, events: list[bytes], action: str = "redact") -> tuple[list, SseGuard]:
    g = guard(provider, action)
    out = b"".join(g.feed(e) for e in events) + g.finish()
    parser = SseParser()
    payloads = [json.loads(e.data) for e in parser.feed(out) + parser.finish()
                if e.data and e.data != "[DONE]"]
    return payloads, g


def joined(payloads: list, *path: object) -> str:
    text = ""
    for payload in payloads:
        node = payload
        for key in path:
            node = node.get(key) if isinstance(node, dict) else (
                node[key] if isinstance(node, list) and len(node) > key else None)  # type: ignore[operator]
        text += node if isinstance(node, str) else ""
    return text


# --- 1. every string ----------------------------------------------------------------------


def test_reasoning_content_split_across_chunks_is_redacted_on_its_own_channel() -> None:
    events = [chat({"reasoning_content": p}) for p in ("the key AKIAQ3EG", "UKZW5XYT7M2P ok")]
    payloads, _ = released(CHAT, [*events, b"data: [DONE]\n\n"])
    assert joined(payloads, "choices", 0, "delta", "reasoning_content") == f"the key {REDACTED} ok"


def test_an_unknown_field_split_across_events_is_one_channel_by_its_path() -> None:
    events = [chat({"content": "", "x_note": {"text": p}}) for p in ("AKIAQ3", "EGUKZW5XYT7M2P")]
    payloads, _ = released(CHAT, [*events, chat({}, finish_reason="stop")])
    assert joined(payloads, "choices", 0, "delta", "x_note", "text") == REDACTED


def test_an_object_key_holding_a_secret_ends_the_stream() -> None:
    payloads, g = released(CHAT, [chat({"content": "hi", "x": {AWS_KEY: 1}})])
    assert g.failure is not None and "key" in g.failure
    assert AWS_KEY not in json.dumps(payloads)


def test_anthropic_thinking_and_citations_are_scanned() -> None:
    def delta(d: dict) -> bytes:
        return sse({"type": "content_block_delta", "index": 0, "delta": d}, "content_block_delta")

    events = [delta({"type": "thinking_delta", "thinking": "AKIAQ3EGU"}),
              delta({"type": "thinking_delta", "thinking": "KZW5XYT7M2P"}),
              sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
              delta({"type": "citations_delta", "citation": {"cited_text": AWS_KEY}})]
    payloads, _ = released(ANTHROPIC, events)
    assert joined(payloads, "delta", "thinking") == REDACTED
    assert AWS_KEY not in json.dumps(payloads)


def test_a_responses_reasoning_summary_and_its_done_snapshot_agree() -> None:
    def ev(kind: str, **fields: object) -> bytes:
        return sse({"type": kind, "output_index": 0, "summary_index": 0, **fields}, kind)

    events = [ev("response.reasoning_summary_text.delta", delta="AKIAQ3EGUK"),
              ev("response.reasoning_summary_text.delta", delta="ZW5XYT7M2P."),
              ev("response.reasoning_summary_text.done", text=f"{AWS_KEY}.")]
    payloads, _ = released(RESPONSES, events)
    assert joined(payloads[:-1], "delta") == f"{REDACTED}."
    assert payloads[-1]["text"] == f"{REDACTED}."


def test_an_upstream_error_event_is_scanned() -> None:
    payloads, _ = released(CHAT, [sse({"error": {"message": f"bad key {AWS_KEY}"}})])
    assert payloads[0]["error"]["message"] == f"bad key {REDACTED}"


# --- 2. JSON inside strings ---------------------------------------------------------------


@pytest.mark.parametrize("provider", [CHAT, ANTHROPIC, RESPONSES], ids=lambda p: p.name)
def test_tool_arguments_are_read_decoded_and_stay_json(provider) -> None:
    escaped = "".join(f"\\u{ord(c):04x}" for c in AWS_KEY)
    source = '{"note": "' + escaped + '"}'
    pieces = [source[i : i + 6] for i in range(0, len(source), 6)]
    if provider is CHAT:
        events = [chat({"tool_calls": [{"index": 0, "function": {"arguments": p}}]})
                  for p in pieces]
        path: tuple = ("choices", 0, "delta", "tool_calls", 0, "function", "arguments")
    elif provider is ANTHROPIC:
        events = [sse({"type": "content_block_delta", "index": 0, "delta": {
            "type": "input_json_delta", "partial_json": p}}) for p in pieces]
        path = ("delta", "partial_json")
    else:
        events = [sse({"type": "response.function_call_arguments.delta", "output_index": 0,
                       "delta": p}) for p in pieces]
        path = ("delta",)
    payloads, _ = released(provider, events)
    assert json.loads(joined(payloads, *path)) == {"note": REDACTED}


# --- 3. what cannot be placed fails closed ------------------------------------------------


@pytest.mark.parametrize("index", ["0", 0.0, False, None])
def test_a_malformed_choice_index_ends_the_stream(index: object) -> None:
    payloads, g = released(CHAT, [chat({"content": AWS_KEY}, index=index)])
    assert g.terminated and "index" in str(g.failure)
    assert AWS_KEY not in json.dumps(payloads)


def test_an_event_named_only_by_its_sse_line_ends_the_stream() -> None:
    event = (b'event: content_block_delta\n'
             b'data: {"index":0,"delta":{"type":"text_delta","text":"x"}}\n\n')
    payloads, g = released(ANTHROPIC, [event])
    assert g.terminated and payloads[-1]["type"] == "error"


def test_a_structural_field_outside_its_shape_fails_closed() -> None:
    assert "finish_reason" in STRUCTURAL
    with pytest.raises(StructureError):
        sweep({"choices": [{"index": 0, "finish_reason": f"stop {AWS_KEY}"}]})
    payloads, g = released(CHAT, [chat({"content": "hi"}, finish_reason=f"stop {AWS_KEY}")])
    assert g.terminated and AWS_KEY not in json.dumps(payloads)


# --- 4. held text has one way out ---------------------------------------------------------


def with_logprobs(piece: str) -> bytes:
    return chat({"content": piece}, logprobs={"content": [
        {"token": piece, "logprob": -1.0, "bytes": list(piece.encode()), "top_logprobs": []}]})


def test_logprobs_of_held_text_are_withheld_and_those_of_released_text_kept() -> None:
    payloads, _ = released(CHAT, [with_logprobs("Hello there. "), with_logprobs("AKIAQ3EG"),
                                  with_logprobs("UKZW5XYT7M2P")])
    logprobs = [p["choices"][0].get("logprobs") for p in payloads]
    kept = [lp for lp in logprobs if lp]
    assert all("AKIA" not in json.dumps(lp) for lp in logprobs)
    assert len(kept) <= 1 and (not kept or kept[0]["content"][0]["token"] == "Hello there. ")


def test_logprobs_whose_bytes_disagree_with_their_token_are_withheld() -> None:
    event = chat({"content": "hi"}, logprobs={"content": [
        {"token": "hi", "logprob": -1.0, "bytes": list(AWS_KEY.encode()), "top_logprobs": []}]})
    payloads, _ = released(CHAT, [event])
    assert all(p["choices"][0].get("logprobs") is None for p in payloads)


def test_a_block_inside_an_event_releases_no_other_channel_of_it() -> None:
    event = sse({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                 "choices": [{"index": 0, "delta": {"content": f"a {AWS_KEY} b"}},
                             {"index": 1, "delta": {"content": "unscanned AKIAQ3EG"}}]})
    payloads, g = released(CHAT, [event], action="block")
    assert g.blocked_by is not None
    assert "unscanned" not in json.dumps(payloads)


# --- whole documents ------------------------------------------------------------------------

POLICY = """
trustDomain: cluster.local
workloads:
  - name: app
    match: ["spiffe://cluster.local/ns/app/sa/client"]
    request: [{scanner: secrets, action: redact}]
    response: [{scanner: secrets, action: redact}]
"""
PEER = "spiffe://cluster.local/ns/app/sa/client"
REQ, RESP = Direction.REQUEST, Direction.RESPONSE


def request(body: bytes, path: str = "/v1/chat/completions") -> tuple[Exchange, list]:
    exchange = Exchange(parse_policy(POLICY, "p.yaml"))
    exchange.receive(HeadersEvent(REQ, ((":method", "POST"), (":path", path)), False,
                                  {"connection.uri_san_peer_certificate": PEER}))
    return exchange, exchange.receive(BodyEvent(REQ, body, True))


def sent(actions: list) -> bytes:
    return b"".join(a.chunk for a in actions if isinstance(a, StreamBody))


def test_a_request_with_a_duplicate_key_is_a_400_in_the_providers_format() -> None:
    _, actions = request(b'{"model": "gpt-4o", "messages": [], "model": "o3"}')
    [refusal] = actions
    assert isinstance(refusal, Respond) and refusal.status == 400
    assert "duplicate" in json.loads(refusal.body)["error"]["message"]


def test_every_request_field_and_key_is_scanned_and_tool_arguments_read_decoded() -> None:
    escaped = "".join(f"\\u{ord(c):04x}" for c in AWS_KEY)
    body = {"model": "gpt-4o", "user": f"u {AWS_KEY}", "metadata": {AWS_KEY: "v"},
            "tools": [{"type": "function", "function": {"name": "f",
                                                        "description": f"d {AWS_KEY}"}}],
            "messages": [{"role": "user", "name": "Jane Doe", "content": [
                {"type": "image_url", "image_url": {"url": f"https://x/{AWS_KEY}"}}]},
                {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
                 "function": {"name": "f", "arguments": '{"k": "' + escaped + '"}'}}]}]}
    _, actions = request(json.dumps(body).encode())
    out = sent(actions)
    assert AWS_KEY.encode() not in out
    forwarded = json.loads(out)
    assert forwarded["metadata"] == {REDACTED: "v"}
    assert forwarded["messages"][0]["name"] == "Jane Doe"
    args = forwarded["messages"][1]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(args) == {"k": REDACTED}


def respond(exchange: Exchange, status: str, content_type: str, body: bytes) -> list:
    head = exchange.receive(HeadersEvent(RESP, ((":status", status),
                                                ("content-type", content_type)), False, {}))
    return head + exchange.receive(BodyEvent(RESP, body, True))


@pytest.mark.parametrize(("content_type", "body"), [
    ("application/json", json.dumps({"error": {"message": f"key {AWS_KEY} is bad"}}).encode()),
    ("text/plain", f"key {AWS_KEY} is bad".encode()),
])
def test_the_upstreams_error_reply_is_scanned(content_type: str, body: bytes) -> None:
    exchange, _ = request(json.dumps({"model": "gpt-4o", "messages": []}).encode())
    out = sent(respond(exchange, "400", content_type, body))
    assert AWS_KEY.encode() not in out and REDACTED.encode() in out


def test_a_non_streamed_answers_logprobs_are_withheld_when_its_text_changed() -> None:
    exchange, _ = request(json.dumps({"model": "gpt-4o", "messages": []}).encode())
    answer = {"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
              "choices": [{"index": 0, "finish_reason": "stop",
                           "message": {"role": "assistant", "content": f"k {AWS_KEY}",
                                       "reasoning_content": f"r {AWS_KEY}"},
                           "logprobs": {"content": [{"token": AWS_KEY, "logprob": -1.0,
                                                     "bytes": None, "top_logprobs": []}]}}]}
    out = json.loads(sent(respond(exchange, "200", "application/json",
                                  json.dumps(answer).encode())))
    choice = out["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": f"k {REDACTED}",
                                 "reasoning_content": f"r {REDACTED}"}
    assert choice["logprobs"] is None


def test_a_swept_fields_held_tail_goes_out_before_the_boundary_in_a_copy_of_its_event() -> None:
    events = [chat({"content": "", "x_note": {"text": "hello AKIA"}}),
              chat({}, finish_reason="stop")]
    payloads, _ = released(CHAT, events)
    assert joined(payloads, "choices", 0, "delta", "x_note", "text") == "hello AKIA"
    finish = [i for i, p in enumerate(payloads) if p["choices"][0]["finish_reason"] == "stop"]
    tails = [i for i, p in enumerate(payloads)
             if "AKIA" in json.dumps(p["choices"][0]["delta"])]
    assert tails and finish and max(tails) < finish[0]
