"""The leak oracle for MCP: a secret a tool server puts anywhere in its answer never
reaches the client, streamed (SSE, split at arbitrary byte boundaries) or whole (JSON).

Hypothesis builds `tools/call` answers as the `mcp` SDK's `MCPServer` sends them, with a
secret in a result's text content, in an error result (`isError`), in structured
content (a value at some depth, or an object key), in a text content that is itself a
JSON document (with any mix of ``\\uXXXX`` and plain spelling), or in a progress
notification streamed before the result. The answer goes through the `Exchange` state
machine under `mcp.response: [{scanner: secrets, action: redact | block}]`.

What the client receives is read as `tests/property/test_leak_oracle.py` reads an LLM
stream (raw bytes, every JSON string decoded, joined fields, strings read again as
JSON), and:
- under `block`, no byte of a blocked match is released (not even its first four
  characters): a result that carried it becomes a JSON-RPC error for the same id,
  and nothing else of it goes out; a notification that carried it is dropped;
- under `redact`, the client's text equals the offline redaction of the text
  (`Scanner.redact`), for every chunking, and the message stays valid JSON-RPC; a
  secret in an object key (which cannot be rewritten) refuses the answer instead.

Four tests of `EXAMPLES` (400) cases each, 1,600 in all, about 7 s on this 2-core machine;
with the key scan of tool results removed, all four fail at once.
"""

from __future__ import annotations

import json
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_leak_oracle import SECRETS, assert_no_leak, check_documents, hidden_text, split

from extproc.events import BodyEvent, Direction, HeadersEvent, Respond, StreamBody
from extproc.scanner import Scanner
from extproc.sse import SseParser
from extproc.stream import Exchange
from mesh.policy import parse_policy

EXAMPLES = 400
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
REQ, RESP = Direction.REQUEST, Direction.RESPONSE
PEER = "spiffe://cluster.local/ns/agents/sa/helper"
POLICY = """
trustDomain: cluster.local
defaultAction: deny
workloads:
  - name: agent
    match: ["spiffe://cluster.local/ns/agents/*"]
    mcp:
      response: [{scanner: secrets, action: %s}]
"""
OFFLINE = Scanner.for_scanners(["secrets"])
CALL = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                   "params": {"name": "search_docs", "arguments": {"q": "x"}}}).encode()
PLACES = ("text", "error_text", "structured", "key", "json_text", "progress")
# Where the client reads the secret's text back, per place (None: it cannot be rewritten).
TEXT_AT = {
    "text": ("result", "content", 0, "text"),
    "error_text": ("result", "content", 0, "text"),
    "structured": ("result", "structuredContent", "report", "rows", 1, "summary"),
    "progress": ("params", "message"),
}


def result_message(place: str, text: str) -> dict:
    content = [{"type": "text", "text": text if place in ("text", "error_text", "json_text")
                else "done"}]
    result: dict = {"content": content, "isError": place == "error_text"}
    if place == "structured":
        result["structuredContent"] = {"report": {"rows": [{"summary": "ok"},
                                                           {"summary": text}]}}
    if place == "key":
        result["structuredContent"] = {"report": {text: "the deploy key"}}
    return {"jsonrpc": "2.0", "id": 7, "result": result}


def progress_message(place: str, text: str) -> dict:
    message = text if place == "progress" else "working"
    return {"jsonrpc": "2.0", "method": "notifications/progress",
            "params": {"progressToken": 1, "progress": 1, "total": 2, "message": message}}


@st.composite
def answers(draw: st.DrawFn) -> tuple[str, str, str, list[bytes]]:
    place = draw(st.sampled_from(PLACES))
    secret = draw(st.sampled_from(SECRETS))
    text = draw(hidden_text(secret, json_doc=place == "json_text"))
    if place == "key":
        text = text.replace("\n", "")
    events = [progress_message(place, text), result_message(place, text)]
    raw = b"".join(
        f"event: message\nid: {i}\ndata: {json.dumps(m)}\n\n".encode()
        for i, m in enumerate(events)
    )
    rng = random.Random(draw(st.integers(0, 2**32)))
    if draw(st.booleans()) and len(raw) < 2000:
        chunks = [raw[i : i + 1] for i in range(len(raw))]
    else:
        pieces = split(raw.decode("latin-1"), rng, draw(st.integers(0, 40)))
        chunks = [piece.encode("latin-1") for piece in pieces]
    return place, secret, text, chunks


def run(action: str, content_type: str, chunks: list[bytes]) -> tuple[bytes, list]:
    exchange = Exchange(parse_policy(POLICY % action, "p.yaml"))
    hs = ((":method", "POST"), (":path", "/mcp"), (":authority", "tools.svc"),
          ("content-type", "application/json"))
    exchange.receive(HeadersEvent(REQ, hs, False, {"connection.uri_san_peer_certificate": PEER}))
    exchange.receive(BodyEvent(REQ, CALL, True))
    actions = exchange.receive(HeadersEvent(RESP, (
        (":status", "200"), ("content-type", content_type)), False))
    for i, chunk in enumerate(chunks):
        if exchange.closed:
            break
        actions += exchange.receive(BodyEvent(RESP, chunk, i == len(chunks) - 1))
    assert not [a for a in actions if isinstance(a, Respond)], "the answer was reset, not judged"
    released = b"".join(a.chunk for a in actions if isinstance(a, StreamBody))
    assert any(isinstance(a, StreamBody) and a.end_of_stream for a in actions)
    return released, actions


def at(document: object, path: tuple) -> object:
    for step in path:
        document = document[step]  # type: ignore[index]
    return document


def sse_documents(released: bytes) -> list[dict]:
    parser = SseParser()
    events = parser.feed(released) + parser.finish()
    return [json.loads(event.data) for event in events if event.data]


def check_blocked(place: str, secret: str, text: str, documents: list[dict],
                  released: bytes) -> None:
    for n in range(4, len(secret) + 1):
        assert secret[:n].encode() not in released, "a byte of the blocked match was released"
    answers = [d for d in documents if d.get("id") == 7]
    assert len(answers) == 1, "exactly one answer for the call"
    if place == "progress":
        # The notification is dropped; the clean result goes out as the server sent it.
        assert not [d for d in documents if d.get("method")]
        assert answers[0] == result_message(place, text)
        return
    [error] = answers
    assert "result" not in error and error["error"]["code"] == -32001


def check_redacted(place: str, secret: str, text: str, documents: list[dict]) -> None:
    answers = [d for d in documents if d.get("id") == 7]
    assert len(answers) == 1
    [answer] = answers
    if place == "key":
        assert "error" in answer and "object key" in answer["error"]["message"]
        return
    assert answer["jsonrpc"] == "2.0" and "result" in answer
    path = TEXT_AT.get(place)
    if path is None:  # a JSON document inside the text: redacted in its source
        inner = json.loads(at(answer, ("result", "content", 0, "text")))  # type: ignore[arg-type]
        assert secret not in json.dumps(inner, ensure_ascii=False)
        return
    holder = next(d for d in documents if d.get("method")) if place == "progress" else answer
    assert at(holder, path) == OFFLINE.redact(text)


def _test(action: str, streamed: bool):  # type: ignore[no-untyped-def]
    @SETTINGS
    @given(case=answers())
    def test(case: tuple[str, str, str, list[bytes]]) -> None:
        place, secret, text, chunks = case
        if streamed:
            released, _ = run(action, "text/event-stream", chunks)
            assert_no_leak(released, secret)
            documents = sse_documents(released)
        else:
            whole = b"".join(chunks)
            result = whole.split(b"data: ")[-1].strip()
            released, _ = run(action, "application/json", [result[:7], result[7:]])
            assert secret.encode() not in released
            documents = [json.loads(released)]
            check_documents(documents, secret)
            if place == "progress":
                return  # a JSON answer carries no notification
        if action == "block":
            check_blocked(place, secret, text, documents, released)
        else:
            check_redacted(place, secret, text, documents)

    kind = "streamed" if streamed else "json"
    test.__name__ = f"test_no_{kind}_mcp_answer_lets_a_client_reassemble_a_secret_under_{action}"
    return test


for _action in ("redact", "block"):
    for _streamed in (True, False):
        _case = _test(_action, _streamed)
        globals()[_case.__name__] = _case
