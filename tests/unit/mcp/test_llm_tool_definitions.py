"""LLM requests offering tools outside the workload's `tools`: a 403 in the provider's format."""

from __future__ import annotations

import json

import pytest

from extproc.events import BodyEvent, Direction, HeadersEvent, Respond, StreamBody
from extproc.llm_tools import offered_tools
from extproc.stream import Exchange
from mesh.policy import parse_policy

REQ = Direction.REQUEST
AGENT = "spiffe://cluster.local/ns/agents/sa/helper"
POLICY = """
trustDomain: cluster.local
workloads:
  - name: agent
    match: ["spiffe://cluster.local/ns/agents/*"]
    tools: ["search_docs", "get_*"]
"""


def function_tool(name: str) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}


CASES = {
    "/v1/chat/completions": lambda names: {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [function_tool(n) for n in names],
    },
    "/v1/responses": lambda names: {
        "model": "gpt-4o",
        "input": "hi",
        "tools": [{"type": "function", "name": n, "parameters": {}} for n in names],
    },
    "/v1/messages": lambda names: {
        "model": "claude-sonnet-4",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"name": n, "input_schema": {"type": "object"}} for n in names],
    },
}


def run(path: str, body: dict, mode: str = "enforce") -> tuple[Exchange, list]:
    exchange = Exchange(parse_policy(POLICY + f"mode: {mode}\n"))
    hs = ((":method", "POST"), (":path", path), (":authority", "api.openai.com"))
    actions = exchange.receive(
        HeadersEvent(REQ, hs, False, {"connection.uri_san_peer_certificate": AGENT})
    )
    actions += exchange.receive(BodyEvent(REQ, json.dumps(body).encode(), True))
    return exchange, actions


@pytest.mark.parametrize("path", sorted(CASES))
def test_a_forbidden_tool_definition_is_refused_with_a_403_naming_the_tool(path):
    exchange, actions = run(path, CASES[path](["search_docs", "delete_repo"]))
    [reply] = actions
    assert isinstance(reply, Respond) and reply.status == 403
    error = json.loads(reply.body)["error"]
    assert "delete_repo" in error["message"] and "workload 'agent'" in error["message"]
    if path == "/v1/messages":
        assert error["type"] == "permission_error"
    assert exchange.record.verdict == "deny"


@pytest.mark.parametrize("path", sorted(CASES))
def test_allowed_tool_definitions_go_on(path):
    body = CASES[path](["search_docs", "get_weather"])
    _, actions = run(path, body)
    assert not any(isinstance(a, Respond) for a in actions)
    assert json.loads(b"".join(a.chunk for a in actions if isinstance(a, StreamBody))) == body


def test_audit_mode_records_a_forbidden_tool_definition_and_lets_it_through():
    exchange, actions = run("/v1/chat/completions", CASES["/v1/chat/completions"](["rm"]), "audit")
    assert not any(isinstance(a, Respond) for a in actions)
    assert exchange.record.verdict == "audit" and "'rm'" in exchange.record.reason


def test_legacy_functions_and_unnamed_tools_are_read():
    body = {"functions": [{"name": "x"}], "tools": [{"type": "function", "function": {"name": 5}}]}
    assert offered_tools(body) == ["(unnamed)", "x"]


STREAM_POLICY = POLICY + "    response: [{scanner: secrets, action: redact}]\n"


def chunk(delta: dict, finish: str | None = None) -> bytes:
    event = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(event).encode() + b"\n\n"


def tool_stream(name: str) -> bytes:
    call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": name, "arguments": ""},
    }
    return b"".join(
        [
            chunk({"role": "assistant", "content": "Sure, "}),
            chunk({"content": "doing it."}),
            chunk({"tool_calls": [call]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"cmd": "rm -rf /"}'}}]}),
            chunk({}, "tool_calls"),
            b"data: [DONE]\n\n",
        ]
    )


def stream_through(name: str, split: int) -> tuple[Exchange, bytes, bool]:
    exchange = Exchange(parse_policy(STREAM_POLICY))
    body = CASES["/v1/chat/completions"](["search_docs"])
    hs = ((":method", "POST"), (":path", "/v1/chat/completions"), (":authority", "api.openai.com"))
    exchange.receive(HeadersEvent(REQ, hs, False, {"connection.uri_san_peer_certificate": AGENT}))
    exchange.receive(BodyEvent(REQ, json.dumps({**body, "stream": True}).encode(), True))
    resp = Direction.RESPONSE
    exchange.receive(
        HeadersEvent(resp, ((":status", "200"), ("content-type", "text/event-stream")), False)
    )
    raw = tool_stream(name)
    out, ended = b"", False
    pieces = [raw[i : i + split] for i in range(0, len(raw), split)]
    for i, piece in enumerate(pieces):
        for action in exchange.receive(BodyEvent(resp, piece, i == len(pieces) - 1)):
            if isinstance(action, StreamBody):
                out += action.chunk
                ended = ended or action.end_of_stream
        if exchange.complete and ended:
            break
    return exchange, out, ended


@pytest.mark.parametrize("split", [1, 7, 10_000])
def test_a_streamed_call_of_a_forbidden_tool_is_blocked_in_band_before_its_arguments(split):
    exchange, out, ended = stream_through("delete_repo", split)
    assert ended
    assert b"rm -rf" not in out and b"delete_repo" not in out.split(b"weir:")[0]
    assert b"tool call blocked by policy: tool 'delete_repo'" in out
    assert b"Sure, " in out
    assert exchange.record.verdict == "block"


def test_a_streamed_call_of_an_allowed_tool_flows():
    _, out, _ = stream_through("search_docs", 13)
    assert b"rm -rf" in out and b"weir:" not in out
