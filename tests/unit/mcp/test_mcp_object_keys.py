"""Object keys in MCP messages are scanned with the `mcp` rules, like every string value.

A key cannot be rewritten in flight (the reader looks fields up by name), so a key that a
`redact` or `block` rule matches refuses the call, replaces the answer with a JSON-RPC
error (over SSE: the stream ends there), drops the notification, or withholds the tool.
No record or error quotes the key.
"""

from __future__ import annotations

import json
import random

from test_mcp_exchange import (
    AWS_KEY,
    INJECTION,
    REQ,
    RESP,
    Exchange,
    Respond,
    answer,
    body_of,
    call,
    list_tools,
    policy,
    send,
    sse,
    sse_messages,
    tool,
    tools_result,
)

from extproc.events import BodyEvent, HeadersEvent, StreamBody

REDACTING = """
  - name: redactor
    match: ["spiffe://cluster.local/ns/redact/*"]
    mcp:
      request: [{scanner: secrets, action: redact}]
"""
REDACTOR = "spiffe://cluster.local/ns/redact/sa/app"


def refusal_of(actions: list) -> Respond:
    [refused] = [a for a in actions if isinstance(a, Respond)]
    return refused


def test_a_secret_as_an_argument_name_is_refused_before_the_server_without_quoting_it():
    exchange = Exchange(policy())
    actions = send(exchange, call("search_docs", {"query": "x", "opts": {AWS_KEY: "1"}}))
    refused = refusal_of(actions)
    assert refused.status == 403
    error = json.loads(refused.body)["error"]
    assert error["code"] == -32001 and "object key" in error["message"]
    assert "params.arguments.opts" in error["message"]
    assert AWS_KEY not in refused.body.decode()
    assert exchange.record.verdict == "deny"
    assert all(AWS_KEY not in f.where for f in exchange.record.findings)


def test_a_key_a_redact_rule_matches_is_refused_too_since_a_key_cannot_be_rewritten():
    exchange = Exchange(policy(REDACTING))
    actions = send(exchange, call("anything", {AWS_KEY: "v"}), peer=REDACTOR)
    assert "a key cannot be rewritten" in json.loads(refusal_of(actions).body)["error"]["message"]
    # The same secret as a value is redacted, and the call goes on.
    exchange = Exchange(policy(REDACTING))
    actions = send(exchange, call("anything", {"v": AWS_KEY}), peer=REDACTOR)
    assert not [a for a in actions if isinstance(a, Respond)]
    assert AWS_KEY.encode() not in body_of(actions, REQ)


def test_clean_keys_pass_byte_for_byte():
    exchange = Exchange(policy())
    body = call("search_docs", {"query": "envoy", "filters": {"lang": "en", "tags": ["a"]}})
    assert body_of(send(exchange, body), REQ) == body


def result_with_key(key: str, msg_id: int = 7) -> dict:
    return {"jsonrpc": "2.0", "id": msg_id, "result": {
        "content": [{"type": "text", "text": "done"}],
        "structuredContent": {"rows": [{key: "value"}]},
    }}


def test_a_secret_key_in_a_json_result_replaces_the_answer_with_an_error():
    exchange = Exchange(policy())
    send(exchange, call("search_docs"))
    body = json.dumps(result_with_key(AWS_KEY)).encode()
    out = body_of(answer(exchange, body, content_type="application/json"), RESP)
    message = json.loads(out)
    assert message["id"] == 7 and message["error"]["code"] == -32001
    assert "object key" in message["error"]["message"]
    assert AWS_KEY not in out.decode() and b"done" not in out
    assert exchange.record.verdict == "block"


def test_a_clean_json_result_with_keys_passes_unchanged():
    exchange = Exchange(policy())
    send(exchange, call("search_docs"))
    body = json.dumps(result_with_key("name")).encode()
    assert body_of(answer(exchange, body, content_type="application/json"), RESP) == body


def test_a_secret_key_in_a_streamed_result_ends_the_stream_with_no_byte_of_it_released():
    progress = {"jsonrpc": "2.0", "method": "notifications/progress",
                "params": {"progressToken": 1, "progress": 1, "message": "working"}}
    raw = sse(progress, result_with_key(AWS_KEY))
    rng = random.Random(2)
    splits = [[raw[i : i + 1] for i in range(len(raw))]]
    for _ in range(15):
        cuts = sorted(rng.sample(range(1, len(raw)), rng.randint(1, 25)))
        splits.append([raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)])
    for chunks in splits:
        exchange = Exchange(policy())
        send(exchange, call("search_docs"))
        hs = ((":status", "200"), ("content-type", "text/event-stream"))
        released, ended = b"", False
        exchange.receive(HeadersEvent(RESP, hs, False))
        for i, chunk in enumerate(chunks):
            for action in exchange.receive(BodyEvent(RESP, chunk, i == len(chunks) - 1)):
                if isinstance(action, StreamBody):
                    released += action.chunk
                    ended = ended or action.end_of_stream
            if ended:
                break
        assert ended and AWS_KEY[:8].encode() not in released
        progress_out, error = sse_messages(released)
        assert progress_out == progress
        assert error["id"] == 7 and "object key" in error["error"]["message"]


def test_a_notification_whose_key_matches_a_rule_is_dropped():
    exchange = Exchange(policy())
    send(exchange, call("search_docs"))
    note = {"jsonrpc": "2.0", "method": "notifications/message",
            "params": {"level": "info", "data": {AWS_KEY: 1}}}
    done = {"jsonrpc": "2.0", "id": 7, "result": {"content": [{"type": "text", "text": "ok"}]}}
    out = body_of(answer(exchange, sse(note, done), content_type="text/event-stream"), RESP)
    assert sse_messages(out) == [done]


def test_a_tool_whose_schema_has_a_poisoned_property_name_is_withheld():
    exchange = Exchange(policy())
    send(exchange, list_tools())
    poisoned = tool("get_weather")
    poisoned["inputSchema"] = {"type": "object", "properties": {INJECTION: {"type": "string"}}}
    body = json.dumps(tools_result(3, [tool("search_docs"), poisoned])).encode()
    out = body_of(answer(exchange, body, content_type="application/json"), RESP)
    assert [t["name"] for t in json.loads(out)["result"]["tools"]] == ["search_docs"]
    assert "get_weather: an object key matched" in exchange.record.reason
