"""Whatever bytes arrive, the MCP guard answers with a value: never an exception."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.mcp.guard import McpCall, McpSseGuard
from extproc.mcp.jsonrpc import JsonRpcProblem, message_of
from extproc.scan_plan import plan_for
from mesh.mcp_policy import ToolRules
from mesh.policy import ScanRule
from mesh.verdicts import Action

RULES = ToolRules(tools=("search_docs", "get_*"))
PLANS = (
    plan_for((ScanRule("secrets", Action.BLOCK),), enforcing=True),
    plan_for((ScanRule("secrets", Action.REDACT),), enforcing=True),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
messages = st.fixed_dictionaries(
    {
        "jsonrpc": st.sampled_from(["2.0", "1.0", 2]),
        "method": st.sampled_from(["tools/call", "tools/list", "ping", 5]),
    },
    optional={"id": json_values, "params": json_values, "result": json_values},
)


def call() -> McpCall:
    return McpCall("agent", RULES, True, plans=PLANS)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | messages.map(lambda m: json.dumps(m).encode()))
def test_any_request_body_gets_a_verdict(body: bytes) -> None:
    verdict = call().judge_request(body, ())
    if verdict.refusal is not None:
        reply = json.loads(verdict.refusal.body)
        assert reply["jsonrpc"] == "2.0" and isinstance(reply["error"]["code"], int)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_message_of_accepts_or_refuses_any_json_value(value: object) -> None:
    try:
        message_of(value)
    except JsonRpcProblem as problem:
        assert problem.code in (-32600, -32700)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=8), messages)
def test_any_sse_answer_is_judged_without_an_exception(chunks: list[bytes], message) -> None:
    mcp = call()
    mcp.judge_request(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode(), ())
    guard = McpSseGuard(mcp, 1 << 16)
    events = [b"data: " + json.dumps(message).encode() + b"\n\n", *chunks]
    for chunk in events:
        guard.feed(chunk)
    guard.finish()
