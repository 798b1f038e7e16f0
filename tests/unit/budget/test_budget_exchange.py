"""Budgets in the exchange state machine, driven with plain events and a `LocalStore`:
the reservation before the request, the usage chunk asked for and hidden, the running
count of released tokens, the in-band ending and the final correction to usage."""

from __future__ import annotations

import json

from extproc.events import BodyEvent, Direction, HeadersEvent, Respond, StreamBody
from extproc.shared_store import LocalStore
from extproc.stream import Exchange
from mesh.policy import parse_policy

REQ, RESP = Direction.REQUEST, Direction.RESPONSE
CHECKOUT = "spiffe://cluster.local/ns/payments/sa/checkout"


def policy(tokens: int, on_unavailable: str = "closed"):
    return parse_policy(f"""
trustDomain: cluster.local
budgetStore: {{onUnavailable: {on_unavailable}}}
workloads:
  - name: checkout
    match: ["{CHECKOUT}"]
    budget: {{tokens: {tokens}, window: 1h}}
""", "budget-policy.yaml")


def drive(exchange: Exchange, store: LocalStore, event: object) -> list:
    actions = exchange.receive(event)  # type: ignore[arg-type]
    if exchange.budget_ask is not None:
        result = store.charge_now(exchange.budget_ask)
        actions = [*actions, *exchange.answer_budget(result.used, result.applied)]
    return actions


def start(exchange: Exchange, store: LocalStore, body: dict) -> list:
    headers = ((":method", "POST"), (":path", "/v1/chat/completions"), (":authority", "llm"))
    attrs = {"connection.uri_san_peer_certificate": CHECKOUT}
    assert drive(exchange, store, HeadersEvent(REQ, headers, False, attrs)) == []
    return drive(exchange, store, BodyEvent(REQ, json.dumps(body).encode(), True))


def chat(stream: bool = True, **extra: object) -> dict:
    return {"model": "gpt-4o", "stream": stream,
            "messages": [{"role": "user", "content": "x" * 40}], **extra}


def sse(*payloads: object) -> list[bytes]:
    return [
        b"data: " + (p if isinstance(p, bytes) else json.dumps(p).encode()) + b"\n\n"
        for p in payloads
    ]


def delta(text: str) -> dict:
    return {"choices": [{"index": 0, "delta": {"content": text}}]}


USAGE_CHUNK = {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3}}


def respond(exchange: Exchange, store: LocalStore, chunks: list[bytes]) -> bytes:
    headers = ((":status", "200"), ("content-type", "text/event-stream"))
    drive(exchange, store, HeadersEvent(RESP, headers, False))
    out = b""
    for i, chunk in enumerate(chunks):
        for action in drive(exchange, store, BodyEvent(RESP, chunk, i == len(chunks) - 1)):
            assert isinstance(action, StreamBody)
            out += action.chunk
    return out


def used(store: LocalStore, exchange: Exchange) -> int:
    settlement = exchange.budget_settlement()
    if settlement is not None:
        store.charge_now(settlement)
    probe = store.charge_now(
        type(settlement)(settlement.key, "probe", 0, 1, 60, False)  # type: ignore[union-attr]
    )
    return probe.used


def test_a_metered_stream_asks_for_usage_and_the_client_never_sees_the_usage_chunk() -> None:
    store, exchange = LocalStore(), Exchange(policy(1000))
    forwarded = start(exchange, store, chat())
    body = json.loads(forwarded[1].chunk)
    assert body["stream_options"] == {"include_usage": True}
    assert "content-length" in forwarded[0].remove_headers
    out = respond(exchange, store, sse(delta("Hello"), USAGE_CHUNK, b"[DONE]"))
    assert b"usage" not in out and b"Hello" in out and out.endswith(b"data: [DONE]\n\n")
    assert exchange.record.budget == "reserved"
    assert used(store, exchange) == 12  # corrected to the provider's usage, not the estimate


def test_a_client_that_asked_for_usage_keeps_its_usage_chunk() -> None:
    store, exchange = LocalStore(), Exchange(policy(1000))
    forwarded = start(exchange, store, chat(stream_options={"include_usage": True}))
    assert forwarded[1].chunk == json.dumps(chat(stream_options={"include_usage": True})).encode()
    out = respond(exchange, store, sse(delta("Hello"), USAGE_CHUNK, b"[DONE]"))
    assert b'"usage"' in out


def test_a_spent_budget_refuses_the_next_call_with_429_and_retry_after() -> None:
    store = LocalStore()
    first = Exchange(policy(20))
    start(first, store, chat())
    respond(first, store, sse(delta("Hi"), USAGE_CHUNK, b"[DONE]"))
    assert used(store, first) == 12
    second = Exchange(policy(20))
    [refusal] = start(second, store, chat())  # 14 input tokens estimated: 26 > 20
    assert isinstance(refusal, Respond) and refusal.status == 429
    headers = dict(refusal.headers)
    assert 1 <= int(headers["retry-after"]) <= 3600
    assert json.loads(refusal.body)["error"]["code"] == "weir_budget_exhausted"
    assert second.record.budget == "refused" and second.budget_settlement() is None


def test_an_answer_that_crosses_the_budget_ends_in_band_with_its_text_so_far() -> None:
    store, exchange = LocalStore(), Exchange(policy(40))
    start(exchange, store, chat())  # 14 reserved
    words = [delta("y" * 20) for _ in range(10)]  # 5 tokens each
    out = respond(exchange, store, sse(*words, USAGE_CHUNK, b"[DONE]"))
    events = [e for e in out.split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]"
    error = json.loads(events[-2].removeprefix(b"data: "))["error"]
    assert error["code"] == "weir_budget_exhausted"
    texts = [e for e in events if b"yyyy" in e]
    assert len(texts) == 6  # 14 + 6 * 5 = 44 > 40: the crossing event is delivered, then it ends
    assert exchange.record.budget == "ended" and exchange.record.verdict == "block"
    assert used(store, exchange) == 44  # no usage came: the estimate stands


def test_a_store_that_does_not_answer_refuses_when_closed_and_allows_when_open() -> None:
    for mode, expected in (("closed", 503), ("open", None)):
        exchange = Exchange(policy(1000, mode))
        headers = ((":method", "POST"), (":path", "/v1/chat/completions"))
        attrs = {"connection.uri_san_peer_certificate": CHECKOUT}
        exchange.receive(HeadersEvent(REQ, headers, False, attrs))
        assert exchange.receive(BodyEvent(REQ, json.dumps(chat()).encode(), True)) == []
        actions = exchange.answer_budget(None)
        assert exchange.record.budget == "unavailable"
        if expected is None:
            assert isinstance(actions[-1], StreamBody)
            assert exchange.budget_settlement() is not None  # counted once the store is back
        else:
            assert isinstance(actions[0], Respond) and actions[0].status == expected


def test_an_unmetered_workload_is_untouched() -> None:
    exchange = Exchange(parse_policy(f"""
trustDomain: cluster.local
workloads:
  - name: checkout
    match: ["{CHECKOUT}"]
""", "p.yaml"))
    store = LocalStore()
    forwarded = start(exchange, store, chat())
    assert json.loads(forwarded[1].chunk) == chat()
    assert exchange.budget_settlement() is None and exchange.record.budget is None


def test_a_per_user_budget_counts_each_end_user_apart_and_users_without_one_together() -> None:
    from extproc.budget_gate import BudgetGate
    from mesh.budget_policy import Budget

    def key(user: str | None, per: str = "user") -> str:
        gate = BudgetGate(Budget(100, "1d", per), workload="w", user=user,
                          on_unavailable="closed", charge_id="c", now=86400 * 5 + 7)
        return gate.key

    assert key("hmac:alice") != key("hmac:bob")
    assert key(None) == key(None) != key("hmac:alice")
    assert key("hmac:alice", "workload") == key("hmac:bob", "workload")
    assert key("hmac:alice").endswith(f":1d:{86400 * 5}")
