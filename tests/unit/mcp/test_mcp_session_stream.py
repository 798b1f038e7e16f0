"""A 2025-06-18 session's GET stream and DELETE through the exchange state machine.

The GET stream carries the server's own messages (notifications, requests, and on a
resumed stream responses); it is guarded with the workload's `mcp.response` rules,
message by message, and a result on it that lists tools is judged as a `tools/list`
answer. DELETE ends the session. Each is recorded as an MCP call (method GET, DELETE).
"""

from __future__ import annotations

import json

from test_mcp_exchange import (
    AGENT,
    AWS_KEY,
    INJECTION,
    OTHER,
    REQ,
    RESP,
    ContinueHeaders,
    Exchange,
    body_of,
    feed,
    policy,
    sse,
    sse_messages,
    tool,
)

from extproc.events import BodyEvent, HeadersEvent, StreamBody


def open_session(method: str, peer: str = AGENT) -> tuple[Exchange, list]:
    exchange = Exchange(policy())
    hs = (
        (":method", method),
        (":path", "/mcp"),
        (":authority", "tools.agents.svc:8080"),
        ("accept", "text/event-stream"),
        ("mcp-session-id", "s-1"),
    )
    actions = exchange.receive(
        HeadersEvent(REQ, hs, True, {"connection.uri_san_peer_certificate": peer})
    )
    return exchange, actions


def stream_back(exchange: Exchange, raw: bytes, *, one_byte: bool = True) -> bytes:
    hs = ((":status", "200"), ("content-type", "text/event-stream"))
    chunks = [raw[i : i + 1] for i in range(len(raw))] if one_byte else [raw]
    events = [HeadersEvent(RESP, hs, False)]
    events += [BodyEvent(RESP, c, i == len(chunks) - 1) for i, c in enumerate(chunks)]
    return body_of(feed(exchange, events), RESP)


def log(data: str) -> dict:
    return {"jsonrpc": "2.0", "method": "notifications/message",
            "params": {"level": "info", "logger": "deploy", "data": data}}


LIST_CHANGED = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}


def test_the_get_stream_goes_upstream_and_is_recorded_as_an_mcp_call():
    exchange, actions = open_session("GET")
    assert [type(a) for a in actions] == [ContinueHeaders]
    assert ("accept-encoding", "identity") in actions[0].set_headers
    record = exchange.record
    assert (record.mcp_method, record.verdict, record.mcp_server) == (
        "GET", "allow", "tools.agents.svc"
    )
    assert "server stream" in record.reason


def test_a_secret_in_a_get_stream_notification_is_redacted_and_an_injection_dropped():
    exchange, _ = open_session("GET")
    raw = sse(log(f"rotated {AWS_KEY} today"), log(INJECTION), LIST_CHANGED, log("fine"))
    out = stream_back(exchange, raw)
    messages = sse_messages(out)
    assert AWS_KEY.encode() not in out and b"Ignore all" not in out
    assert [m["method"] for m in messages] == [
        "notifications/message", "notifications/tools/list_changed", "notifications/message"
    ]
    assert messages[0]["params"]["data"].startswith("rotated ")
    assert messages[2] == log("fine")
    assert exchange.record.verdict == "block"  # the dropped injection is on the record
    assert "MCP server message blocked" in exchange.record.reason


def test_list_changed_on_the_get_stream_passes_and_is_noted():
    exchange, _ = open_session("GET")
    out = stream_back(exchange, sse(LIST_CHANGED))
    assert sse_messages(out) == [LIST_CHANGED]
    assert exchange.record.verdict == "allow"
    assert "tools/list_changed" in exchange.record.reason


def test_a_tools_list_result_on_the_get_stream_is_filtered_as_on_post():
    exchange, _ = open_session("GET")
    listing = {"jsonrpc": "2.0", "id": 4, "result": {"tools": [
        tool("search_docs"), tool("delete_repo"), tool("get_notes", f"Notes. {INJECTION}"),
    ]}}
    out = stream_back(exchange, sse(listing), one_byte=False)
    [message] = sse_messages(out)
    assert [t["name"] for t in message["result"]["tools"]] == ["search_docs"]
    assert "delete_repo: not in tools" in exchange.record.reason


def test_a_result_on_the_get_stream_is_scanned_as_a_result():
    exchange, _ = open_session("GET")
    result = {"jsonrpc": "2.0", "id": 9, "result": {"content": [
        {"type": "text", "text": f"Sure. {INJECTION}"}]}}
    out = stream_back(exchange, sse(result))
    [error] = sse_messages(out)
    assert error["id"] == 9 and "blocked" in error["error"]["message"]
    assert b"Sure" not in out


def test_delete_ends_the_session_and_is_recorded_as_an_mcp_call():
    exchange, actions = open_session("DELETE")
    assert [type(a) for a in actions] == [ContinueHeaders]
    hs = ((":status", "200"), ("content-length", "0"))
    after = exchange.receive(HeadersEvent(RESP, hs, True))
    assert [type(a) for a in after] == [ContinueHeaders]
    record = exchange.record
    assert (record.mcp_method, record.tool_name, record.verdict) == ("DELETE", None, "allow")
    assert "session's end" in record.reason


def test_a_get_stream_of_a_workload_without_mcp_rules_passes_through_unread():
    exchange, _ = open_session("GET", peer=OTHER)
    raw = sse(log(f"rotated {AWS_KEY}"))
    hs = ((":status", "200"), ("content-type", "text/event-stream"))
    actions = exchange.receive(HeadersEvent(RESP, hs, False))
    actions += exchange.receive(BodyEvent(RESP, raw, True))
    assert b"".join(a.chunk for a in actions if isinstance(a, StreamBody)) == raw
    assert json.loads(raw.split(b"data: ")[1])["params"]["data"].endswith(AWS_KEY)
