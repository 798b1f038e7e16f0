"""The leak oracle: wherever an upstream or a client puts a secret, no one can reassemble it.

Hypothesis builds provider event streams (all three APIs) and request bodies that
place a secret anywhere a client could read it back: the known text fields, reasoning
and thinking, transcripts, citations and annotations, unknown fields, object keys,
logprobs, opening events whose text continues in the next delta, error events, and
tool-call arguments: JSON inside a string, with any mix of ``\\uXXXX`` and plain
spelling. Texts are split at random points across events, and the SSE bytes at
random points across chunks.

What Weir releases is then read the way a determined client would, and none of these
may show the secret:
- the raw bytes;
- every JSON string (escapes decoded), each field joined across events in order
  (the path with list positions normalised, as an SDK accumulates it);
- each joined field read again as JSON when it is one (``json.loads(arguments)``),
  or with its JSON escapes decoded when it is not a whole document;
- all non-structural strings of the stream joined in order (pieces spread over
  successive fields).

Redact and block, request and response: eight tests of `EXAMPLES` (1,000) cases each,
8,000 in all, about 20 s on this 2-core machine. A run with 3,000 per test (24,000
cases) passed too; the same file fails at once on the code before issue 11.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc.events import BodyEvent, Direction, HeadersEvent, Respond, StreamBody
from extproc.llm import PROVIDERS
from extproc.scan_plan import plan_for
from extproc.sse import SseParser
from extproc.sse_guard import SseGuard
from extproc.stream import Exchange
from mesh.policy import ScanRule, parse_policy

EXAMPLES = 1000
SECRETS = ("AKIAQ3EGUKZW5XYT7M2P", "ghp_R8mQ2vX7kL4pZ9wT1yB6nC3dF5gH0jK2sA7e")
CHAT, RESPONSES, ANTHROPIC = PROVIDERS
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# The oracle's own notion of what is not text, kept apart from Weir's table on purpose.
STRUCTURAL = {"id", "type", "object", "model", "role", "finish_reason", "stop_reason", "status",
              "item_id", "call_id", "name", "signature"}


def plan(action: str):
    result = plan_for((ScanRule("secrets", action),), enforcing=True)
    assert result is not None
    return result


# --- how a client may read what Weir released ---------------------------------------------


def _strings(node: object, path: tuple, out: list[tuple[tuple, str, bool]]) -> None:
    """(normalised path, string, structural) for every key and value, in order."""
    if isinstance(node, str):
        out.append((path, node, False))
    elif isinstance(node, dict):
        for key, value in node.items():
            out.append((("#key", *path), key, False))
            if isinstance(value, str):
                out.append(((*path, key), value, key in STRUCTURAL))
            else:
                _strings(value, (*path, key), out)
    elif isinstance(node, list):
        for value in node:
            place = value.get("index", "*") if isinstance(value, dict) else "*"
            _strings(value, (*path, place), out)


_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|\\(.)")


def _unescaped(text: str) -> str:
    simple = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}
    return _ESCAPE.sub(
        lambda m: chr(int(m.group(1), 16)) if m.group(1) else simple.get(m.group(2), m.group(2)),
        text,
    )


def _readings(text: str) -> Iterator[str]:
    yield text
    yield _unescaped(text)
    try:
        inner = json.loads(text)
    except ValueError:
        return
    found: list[tuple[tuple, str, bool]] = []
    _strings(inner, (), found)
    for _, string, _ in found:
        yield string


def assert_no_leak(released: bytes, secret: str) -> None:
    assert secret.encode() not in released, "the raw bytes carry the secret"
    parser = SseParser()
    events = parser.feed(released) + parser.finish()
    payloads: list[object] = []
    for event in events:
        if event.data:
            try:
                payloads.append(json.loads(event.data))
            except ValueError:
                assert secret not in _unescaped(event.data)
    check_documents(payloads, secret)


def check_documents(payloads: list[object], secret: str) -> None:
    fields: dict[tuple, list[str]] = {}
    everything: list[str] = []
    for payload in payloads:
        found: list[tuple[tuple, str, bool]] = []
        _strings(payload, (), found)
        kind = payload.get("type") if isinstance(payload, dict) else None
        for path, string, structural in found:
            fields.setdefault((kind, path), []).append(string)
            if not structural:
                everything.append(string)
    for (_, path), strings in fields.items():
        for text in (*strings, "".join(strings)):
            for reading in _readings(text):
                assert secret not in reading, f"field {path} gives the secret back"
    assert secret not in "".join(everything), "successive fields give the secret back"


# --- where the secret goes ---------------------------------------------------------------


@st.composite
def hidden_text(draw: st.DrawFn, secret: str, *, json_doc: bool) -> str:
    """The text that carries the secret: plain, or a JSON document with escapes."""
    before = draw(st.sampled_from(["", "key: ", "deploy with ", "x "]))
    after = draw(st.sampled_from(["", " now", ".", "\n"]))
    if not json_doc:
        return f"{before}{secret}{after}"
    spelled = "".join(
        f"\\u{ord(ch):04x}" if draw(st.booleans()) else ch for ch in secret
    )
    key = draw(st.sampled_from(["note", "k", "a\\nb"]))
    tail = after.replace("\n", "\\n")
    return f'{{"{key}": "{before}{spelled}{tail}", "n": [1, true]}}'


def split(text: str, rng: random.Random, most: int) -> list[str]:
    cuts = sorted(rng.sample(range(1, len(text)), min(most, len(text) - 1)))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


def sse(payload: dict, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(payload)}\n\n".encode()


def chat_events(place: str, pieces: list[str]) -> list[bytes]:
    def chunk(delta: dict, **extra: object) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": None, **extra}
        return sse({"id": "c1", "object": "chat.completion.chunk", "created": 1,
                    "model": "gpt-4o", "choices": [choice]})

    out = [chunk({"role": "assistant", "content": ""})]
    if place == "tool_arguments":
        out.append(chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                          "function": {"name": "f", "arguments": ""}}]}))
    for piece in pieces:
        if place in ("content", "reasoning_content", "reasoning"):
            out.append(chunk({place: piece}))
        elif place == "logprobs":
            tokens = [{"token": piece, "logprob": -0.1, "bytes": list(piece.encode()),
                       "top_logprobs": [{"token": piece, "logprob": -0.1}]}]
            out.append(chunk({"content": piece}, logprobs={"content": tokens}))
        elif place == "transcript":
            out.append(chunk({"audio": {"id": "a1", "transcript": piece}}))
        elif place == "unknown":
            out.append(chunk({"content": "", "x_extra": {"note": piece}}))
        elif place == "tool_arguments":
            out.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
        elif place == "annotations":
            out.append(chunk({"annotations": [{"type": "url_citation", "url_citation": {
                "title": piece, "url": "https://e.x/"}}]}))
    if place == "key":
        out.append(chunk({"content": "", "x": {"".join(pieces): 1}}))
    if place == "error":
        out.append(sse({"error": {"message": "".join(pieces), "type": "server_error"}}))
    out.append(chunk({}, finish_reason="stop"))
    return [*out, b"data: [DONE]\n\n"]


def anthropic_events(place: str, pieces: list[str]) -> list[bytes]:
    def ev(payload: dict) -> bytes:
        return sse(payload, payload["type"])

    block = {"text": {"type": "text", "text": ""}, "thinking": {"type": "thinking",
             "thinking": "", "signature": ""}, "tool": {"type": "tool_use", "id": "toolu_1",
             "name": "f", "input": {}}}
    kinds = {"text": ("text", "text_delta", "text"), "opening": ("text", "text_delta", "text"),
             "thinking": ("thinking", "thinking_delta", "thinking"),
             "tool_arguments": ("tool", "input_json_delta", "partial_json"),
             "citations": ("text", "citations_delta", None), "unknown": ("text", "x_delta", "x"),
             "stop_sequence": ("text", "text_delta", "text"),
             "tool_start": ("tool", "input_json_delta", "partial_json")}
    block_kind, delta_type, key = kinds[place]
    out = [ev({"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude", "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 1,
                                                               "output_tokens": 1}}})]
    start = dict(block[block_kind])
    rest = pieces
    if place == "opening":
        start["text"], rest = pieces[0], pieces[1:]
    if place == "tool_start":
        start["input"], rest = {"q": {"deep": ["".join(pieces)]}}, []
    out.append(ev({"type": "content_block_start", "index": 0, "content_block": start}))
    if place != "stop_sequence":
        for piece in rest:
            if place == "citations":
                delta = {"type": "citations_delta", "citation": {
                    "type": "char_location", "cited_text": piece, "document_index": 0,
                    "document_title": None, "start_char_index": 0, "end_char_index": 1}}
            else:
                delta = {"type": delta_type, key: piece}
            out.append(ev({"type": "content_block_delta", "index": 0, "delta": delta}))
    out.append(ev({"type": "content_block_stop", "index": 0}))
    sequence = "".join(pieces) if place == "stop_sequence" else None
    out.append(ev({"type": "message_delta", "delta": {"stop_reason": "end_turn",
                   "stop_sequence": sequence}, "usage": {"output_tokens": 2}}))
    return [*out, ev({"type": "message_stop"})]


def responses_events(place: str, pieces: list[str]) -> list[bytes]:
    number = iter(range(10_000))

    def ev(kind: str, **fields: object) -> bytes:
        return sse({"type": kind, "sequence_number": next(number), **fields}, kind)

    response = {"id": "resp_1", "object": "response", "created_at": 1, "status": "in_progress",
                "model": "gpt-4o", "output": [], "usage": None}
    out = [ev("response.created", response=response)]
    text = "".join(pieces)
    if place in ("text", "opening", "annotation"):
        out.append(ev("response.output_item.added", output_index=0, item={
            "id": "msg_1", "type": "message", "status": "in_progress", "role": "assistant",
            "content": []}))
        first, rest = (pieces[0], pieces[1:]) if place == "opening" else ("", pieces)
        out.append(ev("response.content_part.added", item_id="msg_1", output_index=0,
                      content_index=0, part={"type": "output_text", "text": first,
                                             "annotations": []}))
        if place == "annotation":
            out.append(ev("response.output_text.annotation.added", item_id="msg_1",
                          output_index=0, content_index=0, annotation_index=0,
                          annotation={"type": "url_citation", "title": text, "url": "https://e"}))
            rest = []
        for piece in rest:
            out.append(ev("response.output_text.delta", item_id="msg_1", output_index=0,
                          content_index=0, delta=piece, logprobs=[]))
        full = text if place != "annotation" else ""
        out.append(ev("response.output_text.done", item_id="msg_1", output_index=0,
                      content_index=0, text=full, logprobs=[]))
    elif place == "reasoning":
        out.append(ev("response.output_item.added", output_index=0, item={
            "id": "rs_1", "type": "reasoning", "summary": []}))
        for piece in pieces:
            out.append(ev("response.reasoning_summary_text.delta", item_id="rs_1",
                          output_index=0, summary_index=0, delta=piece))
        out.append(ev("response.reasoning_summary_text.done", item_id="rs_1", output_index=0,
                      summary_index=0, text=text))
    elif place == "tool_arguments":
        out.append(ev("response.output_item.added", output_index=0, item={
            "id": "fc_1", "type": "function_call", "status": "in_progress", "call_id": "call_1",
            "name": "f", "arguments": ""}))
        for piece in pieces:
            out.append(ev("response.function_call_arguments.delta", item_id="fc_1",
                          output_index=0, delta=piece))
        out.append(ev("response.function_call_arguments.done", item_id="fc_1", output_index=0,
                      arguments=text))
        out.append(ev("response.output_item.done", output_index=0, item={
            "id": "fc_1", "type": "function_call", "status": "completed", "call_id": "call_1",
            "name": "f", "arguments": text}))
    elif place == "unknown":
        for piece in pieces:
            out.append(ev("response.x_custom.delta", output_index=0, delta=piece))
    done = dict(response, status="completed", usage={"input_tokens": 1, "output_tokens": 2})
    return [*out, ev("response.completed", response=done)]


STREAMS = {
    "chat": (CHAT, chat_events, ["content", "reasoning_content", "reasoning", "logprobs",
                                 "transcript", "unknown", "tool_arguments", "annotations",
                                 "key", "error"]),
    "anthropic": (ANTHROPIC, anthropic_events, ["text", "opening", "thinking",
                                                "tool_arguments", "citations", "unknown",
                                                "stop_sequence", "tool_start"]),
    "responses": (RESPONSES, responses_events, ["text", "opening", "annotation", "reasoning",
                                                "tool_arguments", "unknown"]),
}


@st.composite
def streams(draw: st.DrawFn, api: str) -> tuple:
    provider, build, places = STREAMS[api]
    place = draw(st.sampled_from(places))
    secret = draw(st.sampled_from(SECRETS))
    text = draw(hidden_text(secret, json_doc=place == "tool_arguments"))
    rng = random.Random(draw(st.integers(0, 2**32)))
    whole = place in ("key", "error", "stop_sequence", "annotation", "tool_start")
    pieces = [text] if whole else split(text, rng, draw(st.integers(1, 8)))
    if place == "opening" and len(pieces) < 2:
        pieces = split(text, rng, 1)
    body = b"".join(build(place, pieces))
    chunks = split(body.decode("latin-1"), rng, draw(st.integers(0, 12))) if len(body) > 1 \
        else [body.decode("latin-1")]
    return provider, [c.encode("latin-1") for c in chunks], secret, place


def run_guard(provider, action: str, chunks: list[bytes]) -> bytes:
    guard = SseGuard(provider, plan(action))
    out = b"".join(guard.feed(chunk) for chunk in chunks)
    return out + guard.finish()


def check_stream(case: tuple, action: str) -> None:
    provider, chunks, secret, _place = case
    released = run_guard(provider, action, chunks)
    assert_no_leak(released, secret)


def _stream_test(api: str, action: str):  # type: ignore[no-untyped-def]
    @SETTINGS
    @given(case=streams(api))
    def test(case: tuple) -> None:
        check_stream(case, action)

    test.__name__ = f"test_no_{api}_stream_lets_a_client_reassemble_a_secret_under_{action}"
    return test


for _api in STREAMS:
    for _action in ("redact", "block"):
        _test = _stream_test(_api, _action)
        globals()[_test.__name__] = _test


# --- requests -----------------------------------------------------------------------------

POLICY = """
trustDomain: cluster.local
defaultAction: deny
workloads:
  - name: app
    match: ["spiffe://cluster.local/ns/app/sa/client"]
    request: [{scanner: secrets, action: %s}]
"""
PEER = "spiffe://cluster.local/ns/app/sa/client"


def request_body(api: str, place: str, text: str) -> dict:
    tool_args = text if place == "tool_arguments" else "{}"
    if api == "chat":
        body: dict = {"model": "gpt-4o", "messages": [
            {"role": "user", "content": text if place == "content" else "hi"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "f", "arguments": tool_args}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "ok"}]}
        if place == "image":
            body["messages"][0]["content"] = [{"type": "image_url",
                                               "image_url": {"url": f"https://x/{text}"}}]
        if place == "tool_description":
            body["tools"] = [{"type": "function", "function": {"name": "f", "description": text}}]
        if place == "metadata":
            body["metadata"] = {"note": text}
        if place == "key":
            body["metadata"] = {text: "v"}
        if place == "user":
            body["user"] = text
        if place == "prediction":
            body["prediction"] = {"type": "content", "content": text}
        return body
    if api == "responses":
        body = {"model": "gpt-4o", "input": [
            {"role": "user", "content": text if place == "content" else "hi"},
            {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": tool_args}]}
        if place in ("image", "prediction"):
            body["prompt"] = {"id": "pmpt_1", "variables": {"v": text}}
        if place == "tool_description":
            body["tools"] = [{"type": "function", "name": "f", "description": text}]
        if place == "metadata":
            body["metadata"] = {"note": text}
        if place == "key":
            body["metadata"] = {text: "v"}
        if place == "user":
            body["user"] = text
        return body
    body = {"model": "claude", "max_tokens": 5, "messages": [
        {"role": "user", "content": text if place == "content" else "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "f",
                                           "input": {"q": {"deep": [text]}}
                                           if place == "tool_arguments" else {}}]}]}
    if place == "image":
        body["messages"][0]["content"] = [{"type": "image", "source": {
            "type": "url", "url": f"https://x/{text}"}}]
    if place == "tool_description":
        body["tools"] = [{"name": "f", "description": text, "input_schema": {"type": "object"}}]
    if place in ("metadata", "user"):
        body["metadata"] = {"user_id": text}
    if place == "key":
        body["metadata"] = {text: "v"}
    if place == "prediction":
        body["system"] = [{"type": "text", "text": text}]
    return body


PATHS = {"chat": "/v1/chat/completions", "responses": "/v1/responses",
         "anthropic": "/v1/messages"}
REQUEST_PLACES = ["content", "tool_arguments", "image", "tool_description", "metadata", "key",
                  "user", "prediction"]


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, dict, str]:
    api = draw(st.sampled_from(sorted(PATHS)))
    place = draw(st.sampled_from(REQUEST_PLACES))
    secret = draw(st.sampled_from(SECRETS))
    json_doc = place == "tool_arguments" and api != "anthropic"
    text = draw(hidden_text(secret, json_doc=json_doc))
    return api, request_body(api, place, text), secret


def forwarded(api: str, body: dict, action: str) -> bytes | None:
    exchange = Exchange(parse_policy(POLICY % action, "p.yaml"))
    exchange.receive(HeadersEvent(Direction.REQUEST, ((":method", "POST"), (":path", PATHS[api]),
                                                      ("content-type", "application/json")),
                                  False, {"connection.uri_san_peer_certificate": PEER}))
    actions = exchange.receive(BodyEvent(Direction.REQUEST, json.dumps(body).encode(), True))
    if any(isinstance(a, Respond) for a in actions):
        return None
    return b"".join(a.chunk for a in actions if isinstance(a, StreamBody))


@SETTINGS
@given(case=requests(), action=st.sampled_from(["redact", "block"]))
def test_no_request_lets_the_upstream_reassemble_a_secret(case: tuple, action: str) -> None:
    api, body, secret = case
    sent = forwarded(api, body, action)
    if action == "block":
        assert sent is None, "a prompt holding a secret went out under block"
        return
    assert sent is not None
    assert secret.encode() not in sent
    check_documents([json.loads(sent)], secret)


# --- non-streamed answers ------------------------------------------------------------------

ANSWER_POLICY = POLICY.replace("request:", "response:")


def answer_body(api: str, place: str, text: str) -> dict:
    if api == "chat":
        message: dict = {"role": "assistant", "content": "ok"}
        choice: dict = {"index": 0, "finish_reason": "stop", "message": message}
        if place == "content":
            message["content"] = text
        elif place == "reasoning":
            message["reasoning_content"] = text
        elif place == "tool_arguments":
            message["tool_calls"] = [{"id": "call_1", "type": "function",
                                      "function": {"name": "f", "arguments": text}}]
        elif place == "annotations":
            message["annotations"] = [{"type": "url_citation",
                                       "url_citation": {"title": text, "url": "https://e"}}]
        elif place == "logprobs":
            choice["logprobs"] = {"content": [{"token": t, "logprob": -1.0, "bytes": None,
                                               "top_logprobs": []} for t in split(
                                                   text, random.Random(len(text)), 4)]}
        elif place == "unknown":
            choice["x_extra"] = {"deep": [text]}
        elif place == "key":
            message["x"] = {text: 1}
        return {"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
                "choices": [choice]}
    if api == "responses":
        item: dict = {"id": "msg_1", "type": "message", "status": "completed",
                      "role": "assistant", "content": [{"type": "output_text", "text": "ok",
                                                        "annotations": []}]}
        if place == "content":
            item["content"][0]["text"] = text
        elif place == "reasoning":
            item = {"id": "rs_1", "type": "reasoning", "summary": [
                {"type": "summary_text", "text": text}]}
        elif place == "tool_arguments":
            item = {"id": "fc_1", "type": "function_call", "call_id": "c", "name": "f",
                    "arguments": text, "status": "completed"}
        elif place == "annotations":
            item["content"][0]["annotations"] = [{"type": "url_citation", "title": text,
                                                  "url": "https://e"}]
        elif place in ("unknown", "logprobs"):
            item["x_extra"] = [text]
        elif place == "key":
            item["x"] = {text: 1}
        return {"id": "resp_1", "object": "response", "created_at": 1, "status": "completed",
                "model": "gpt-4o", "output": [item]}
    block: dict = {"type": "text", "text": "ok"}
    if place == "content":
        block["text"] = text
    elif place == "reasoning":
        block = {"type": "thinking", "thinking": text, "signature": "c2ln"}
    elif place == "tool_arguments":
        block = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"q": [text]}}
    elif place == "annotations":
        block["citations"] = [{"type": "char_location", "cited_text": text}]
    elif place in ("unknown", "logprobs"):
        block["x_extra"] = text
    elif place == "key":
        block["x"] = {text: 1}
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": [block], "stop_reason": "end_turn", "stop_sequence": None}


ANSWER_PLACES = ["content", "reasoning", "tool_arguments", "annotations", "logprobs", "unknown",
                 "key"]


@st.composite
def answers(draw: st.DrawFn) -> tuple[str, dict, str]:
    api = draw(st.sampled_from(sorted(PATHS)))
    place = draw(st.sampled_from(ANSWER_PLACES))
    secret = draw(st.sampled_from(SECRETS))
    json_doc = place == "tool_arguments" and api != "anthropic"
    text = draw(hidden_text(secret, json_doc=json_doc))
    return api, answer_body(api, place, text), secret


@SETTINGS
@given(case=answers(), action=st.sampled_from(["redact", "block"]))
def test_no_whole_answer_lets_a_client_reassemble_a_secret(case: tuple, action: str) -> None:
    api, body, secret = case
    exchange = Exchange(parse_policy(ANSWER_POLICY % action, "p.yaml"))
    exchange.receive(HeadersEvent(Direction.REQUEST, ((":method", "POST"), (":path", PATHS[api]),
                                                      ("content-type", "application/json")),
                                  False, {"connection.uri_san_peer_certificate": PEER}))
    exchange.receive(BodyEvent(Direction.REQUEST, b'{"model": "gpt-4o", "messages": []}', True))
    actions = exchange.receive(HeadersEvent(Direction.RESPONSE, (
        (":status", "200"), ("content-type", "application/json")), False, {}))
    actions += exchange.receive(BodyEvent(Direction.RESPONSE, json.dumps(body).encode(), True))
    refused = [a for a in actions if isinstance(a, Respond)]
    if refused:
        # Blocked (logprobs that alone spell a secret are withheld instead, under block too).
        assert action == "block" and secret not in refused[0].body.decode()
        return
    out = b"".join(a.chunk for a in actions if isinstance(a, StreamBody))
    assert secret.encode() not in out
    check_documents([json.loads(out)], secret)
