"""The cluster inventory: replicas' snapshots merged, counts added and sets united."""

from __future__ import annotations

from extproc.inventory import Inventory
from extproc.inventory_merge import merge_snapshots
from extproc.stream import ExchangeRecord

CHECKOUT = "spiffe://cluster.local/ns/payments/sa/checkout"


def record(**fields: object) -> ExchangeRecord:
    base: dict[str, object] = dict(
        principal=CHECKOUT, workload="checkout", provider="openai.chat_completions",
        model="gpt-4o", verdict="allow", authority="api.openai.com", ai_host=True,
        recognised_by="path", input_tokens=3, output_tokens=5,
    )
    base.update(fields)
    return ExchangeRecord(**base)  # type: ignore[arg-type]


def test_two_replicas_merge_into_what_one_replica_seeing_everything_reports() -> None:
    a, b, both = Inventory(), Inventory(), Inventory()
    calls = [record(), record(model="gpt-4o-mini", verdict="deny", user="hmac:u1"),
             record(output_tokens=7)]
    for i, call in enumerate(calls):
        (a if i % 2 == 0 else b).observe(call)
        both.observe(call)
    merged = merge_snapshots([a.snapshot(), b.snapshot()])
    whole = both.snapshot()
    for view in (merged, whole):
        view.pop("generatedAt")
        for entry in [*view["workloads"], *view["authorities"]]:  # type: ignore[misc]
            entry.pop("firstSeen"), entry.pop("lastSeen")
    assert merged == whole


def test_merging_nothing_is_an_empty_inventory() -> None:
    merged = merge_snapshots([])
    assert (merged["workloads"], merged["authorities"]) == ([], [])
