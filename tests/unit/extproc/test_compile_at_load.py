"""Scan plans are compiled when a policy loads, never on the request path.

A policy whose rules cannot compile is refused at load, with the file, the
rule's path and the reason, and the previous policy stays in force; the first
request after a reload finds its plans ready.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from extproc import scan_plan
from extproc.events import BodyEvent, Direction, HeadersEvent, Respond
from extproc.metrics import Metrics
from extproc.policy_store import PolicyStore
from extproc.stream import Exchange
from mesh.policy import PolicyError

APP = "spiffe://cluster.local/ns/app/sa/app"


def policy_text(terms: str) -> str:
    return (
        "trustDomain: cluster.local\n"
        "workloads:\n"
        "  - name: app\n"
        f"    match: [{APP}]\n"
        "    request:\n"
        "      - {scanner: secrets, action: block}\n"
        f"      - {{scanner: deny-list, action: block, terms: {terms}}}\n"
    )


def prompt_exchange(store: PolicyStore, prompt: str) -> Exchange:
    exchange = Exchange(store.current, plans=store.plans)
    headers = ((":method", "POST"), (":path", "/v1/chat/completions"), (":authority", "llm"))
    attributes = {"connection.uri_san_peer_certificate": APP}
    exchange.receive(HeadersEvent(Direction.REQUEST, headers, False, attributes))
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}]}
    exchange.receive(BodyEvent(Direction.REQUEST, json.dumps(body).encode(), True))
    return exchange


def forbid_compiling(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a scan plan was compiled on the request path")

    monkeypatch.setattr(scan_plan.Scanner, "for_scanners", refuse)
    monkeypatch.setattr(scan_plan, "compile_plans", refuse)
    monkeypatch.setattr("extproc.stream.compile_plans", refuse)


def test_the_first_request_after_a_reload_finds_its_plans_compiled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text("[alpha]"))
    store = PolicyStore(path, Metrics())
    store.load_initial()
    path.write_text(policy_text("[bravo, charlie]"))
    try:
        assert asyncio.run(store.refresh()) is True  # in the worker process
    finally:
        store.close()
    forbid_compiling(monkeypatch)
    assert store.plans.digest == store.current.digest
    exchange = prompt_exchange(store, "tell me about project charlie")
    assert exchange.record.verdict == "deny"
    assert exchange.record.findings[0].rule == "deny-list"
    assert prompt_exchange(store, "tell me about project alpha").record.verdict == "allow"


def test_a_reload_that_cannot_compile_keeps_the_last_good_policy(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text("[alpha]"))
    store = PolicyStore(path, Metrics())
    store.load_initial()
    good = store.current.digest
    path.write_text(policy_text('[bravo, "\\u200b"]'))
    try:
        assert asyncio.run(store.refresh()) is False
    finally:
        store.close()
    assert store.current.digest == good
    error = store.last_error
    assert isinstance(error, PolicyError)  # rebuilt whole from the worker process
    assert (error.file, error.path) == (str(path), "workloads[0].request[1].terms[1]")
    assert "zero-width" in error.reason
    assert str(error) == f"{path}: workloads[0].request[1].terms[1]: {error.reason}"
    assert prompt_exchange(store, "project alpha").record.verdict == "deny"


def test_a_zero_width_term_is_refused_by_the_same_step_in_this_thread(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text('["\\u200b\\u200d"]'))
    with pytest.raises(PolicyError) as caught:
        PolicyStore(path, Metrics()).load_initial()
    assert caught.value.path == "workloads[0].request[1].terms[0]"


def test_an_exchange_built_without_plans_compiles_its_own() -> None:
    from mesh.policy import parse_policy

    exchange = Exchange(parse_policy(policy_text("[alpha]")))
    headers = ((":method", "POST"), (":path", "/v1/chat/completions"))
    attributes = {"connection.uri_san_peer_certificate": APP}
    exchange.receive(HeadersEvent(Direction.REQUEST, headers, False, attributes))
    body = {"model": "m", "messages": [{"role": "user", "content": "about alpha"}]}
    actions = exchange.receive(BodyEvent(Direction.REQUEST, json.dumps(body).encode(), True))
    assert isinstance(actions[0], Respond) and actions[0].status == 403
