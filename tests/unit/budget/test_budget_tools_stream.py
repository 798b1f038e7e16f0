"""A budget on a workload whose answers are tools-checked (`tools`, no response rules):
the released events are counted as for any token stream, and a spent budget or a
forbidden tool ends the answer in band."""

from __future__ import annotations

import json

from test_budget_exchange import CHECKOUT, USAGE_CHUNK, chat, delta, respond, sse, start, used

from extproc.shared_store import LocalStore
from extproc.stream import Exchange
from mesh.policy import parse_policy


def policy(tokens: int):
    return parse_policy(f"""
trustDomain: cluster.local
workloads:
  - name: checkout
    match: ["{CHECKOUT}"]
    tools: ["search_docs"]
    budget: {{tokens: {tokens}, window: 1h}}
""", "budget-tools-policy.yaml")


def events_of(out: bytes) -> list[bytes]:
    return [e for e in out.split(b"\n\n") if e]


def test_a_tools_checked_answer_that_crosses_the_budget_ends_in_band() -> None:
    store, exchange = LocalStore(), Exchange(policy(40))
    start(exchange, store, chat())  # 14 reserved
    out = respond(exchange, store, sse(*[delta("y" * 20) for _ in range(10)],
                                       USAGE_CHUNK, b"[DONE]"))
    events = events_of(out)
    assert events[-1] == b"data: [DONE]"
    assert json.loads(events[-2].removeprefix(b"data: "))["error"]["code"] == (
        "weir_budget_exhausted"
    )
    assert len([e for e in events if b"yyyy" in e]) == 6
    assert exchange.record.budget == "ended" and exchange.record.verdict == "block"
    assert used(store, exchange) == 44


def test_a_budgeted_tools_checked_answer_hides_the_usage_chunk_and_settles_on_usage() -> None:
    store, exchange = LocalStore(), Exchange(policy(1000))
    start(exchange, store, chat())
    out = respond(exchange, store, sse(delta("Hello"), USAGE_CHUNK, b"[DONE]"))
    assert b"usage" not in out and out.endswith(b"data: [DONE]\n\n")
    assert exchange.record.budget == "reserved" and exchange.record.verdict == "allow"
    assert used(store, exchange) == 12


def test_a_forbidden_tool_in_a_budgeted_answer_ends_it_with_the_tool_error() -> None:
    store, exchange = LocalStore(), Exchange(policy(1000))
    start(exchange, store, chat())
    call = {"index": 0, "id": "c1", "type": "function",
            "function": {"name": "delete_repo", "arguments": ""}}
    args = {"index": 0, "function": {"arguments": '{"repo": "prod"}'}}
    out = respond(exchange, store, sse(
        delta("Sure"),
        {"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [args]}}]},
        b"[DONE]",
    ))
    events = events_of(out)
    assert b"Sure" in events[0] and b"prod" not in out
    assert json.loads(events[-2].removeprefix(b"data: "))["error"]["code"] == "weir_tool_blocked"
    assert exchange.record.verdict == "block" and exchange.record.budget == "reserved"
