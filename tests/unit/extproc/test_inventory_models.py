"""The inventory tells models that were used from models that were asked for and refused."""

from __future__ import annotations

from extproc.inventory import Inventory
from extproc.stream import ExchangeRecord

CHECKOUT = "spiffe://cluster.local/ns/payments/sa/checkout"


def test_a_refused_model_is_listed_as_denied_not_as_used() -> None:
    inventory = Inventory()
    for model, verdict in [("gpt-4o", "allow"), ("gpt-5", "deny"), ("o3", "audit")]:
        inventory.observe(ExchangeRecord(principal=CHECKOUT, model=model, verdict=verdict))
    [entry] = inventory.snapshot()["workloads"]  # type: ignore[index]
    assert entry["models"] == ["gpt-4o", "o3"]
    assert entry["deniedModels"] == ["gpt-5"]
    assert entry["decisions"] == {"allow": 1, "audit": 1, "deny": 1}
