"""The inventory lists the hosts AI calls go to, shadow AI among them."""

from __future__ import annotations

from extproc.inventory import Inventory
from extproc.stream import ExchangeRecord

CHECKOUT = "spiffe://cluster.local/ns/payments/sa/checkout"


def record(**fields: object) -> ExchangeRecord:
    base: dict[str, object] = {"principal": CHECKOUT, "verdict": "allow"}
    base.update(fields)
    return ExchangeRecord(**base)  # type: ignore[arg-type]


def test_llm_calls_are_listed_by_authority_with_how_they_were_recognised() -> None:
    inventory = Inventory()
    inventory.observe(record(authority="vllm.internal", recognised_by="body",
                             provider="openai.chat_completions", model="llama-3"))
    inventory.observe(record(authority="vllm.internal", recognised_by="path",
                             provider="openai.chat_completions", model="llama-3"))
    inventory.observe(record(authority="api.openai.com", ai_host=True, recognised_by="path",
                             provider="openai.responses", model="gpt-4o"))
    inventory.observe(record(authority="api.openai.com", ai_host=True, verdict="deny"))
    [openai, vllm] = inventory.snapshot()["authorities"]  # type: ignore[misc]
    assert vllm["authority"] == "vllm.internal" and vllm["shadow"] is True
    assert vllm["recognisedBy"] == {"body": 1, "path": 1}
    assert vllm["models"] == ["llama-3"] and vllm["identities"] == [CHECKOUT]
    assert openai["knownAiHost"] is True and openai["shadow"] is False
    assert openai["recognisedBy"] == {"host": 1, "path": 1}
    assert openai["decisions"] == {"allow": 1, "deny": 1}


def test_ordinary_traffic_is_not_listed_among_ai_authorities() -> None:
    inventory = Inventory()
    inventory.observe(record(authority="billing.payments.svc"))
    assert inventory.snapshot()["authorities"] == []
    assert len(inventory.snapshot()["workloads"]) == 1  # type: ignore[arg-type]
