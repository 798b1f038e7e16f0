"""What sniffing costs the traffic that is not an LLM call, in process.

In sidecar-outbound mode every outbound call of a workload goes through Weir, and a
request on a path Weir does not know has its body sniffed (`extproc.body_shape`).
This measures the request side of one exchange through `Exchange` for ordinary
bodies, sniffed, against the very same bytes passed through unsniffed (sent as a gRPC
stream, which Weir never holds), in the same run. Ratios, not absolute times, are
the figures to quote: the machine is shared.

    python -m loadtest.bench_sniff [--seconds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import time

from extproc.events import BodyEvent, Direction, HeadersEvent
from extproc.stream import Exchange
from mesh.policy import Policy, parse_policy

REQ = Direction.REQUEST
PEER = "spiffe://cluster.local/ns/payments/sa/checkout"
POLICY = """
trustDomain: cluster.local
workloads:
  - name: payments-checkout
    match: ["spiffe://cluster.local/ns/payments/sa/checkout"]
"""
CHUNK = 64 * 1024
UNSNIFFED = ("content-type", "application/grpc")


def run_once(policy: Policy, body: bytes, content_type: tuple[str, str]) -> None:
    exchange = Exchange(policy)
    headers = ((":method", "POST"), (":path", "/api/orders"), (":authority", "orders"),
               content_type)
    exchange.receive(HeadersEvent(REQ, headers, False,
                                  {"connection.uri_san_peer_certificate": PEER}))
    pieces = [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)]
    for index, piece in enumerate(pieces):
        exchange.receive(BodyEvent(REQ, piece, index == len(pieces) - 1))
    assert exchange.record.verdict == "allow", exchange.record


def per_exchange(policy: Policy, body: bytes, content_type: tuple[str, str],
                 seconds: float) -> float:
    """The best of five batches: on a shared machine the minimum is the stable figure."""
    run_once(policy, body, content_type)
    best = float("inf")
    for _ in range(5):
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds / 5 and count < 20_000:
            run_once(policy, body, content_type)
            count += 1
        best = min(best, (time.perf_counter() - started) / count)
    return best


def bodies() -> dict[str, bytes]:
    orders = [{"sku": f"A-{i}", "qty": i % 5, "note": "gift wrap"} for i in range(21_000)]
    return {
        "1 KiB JSON": json.dumps({"order": 42, "items": orders[:18]}).encode(),
        "1 MiB JSON": json.dumps({"order": 42, "items": orders}).encode(),
        "1 MiB JSON naming 'model' (parsed)": json.dumps(
            {"order": 42, "modelYear": 2024, "items": orders}
        ).encode(),
        "1 MiB binary": os.urandom(1024 * 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    policy = parse_policy(POLICY, "bench.yaml")
    print("request side of one exchange: sniffed vs the same bytes unsniffed (same run)")
    for name, body in bodies().items():
        sniffed = per_exchange(policy, body, ("content-type", "application/json"), args.seconds)
        passed = per_exchange(policy, body, UNSNIFFED, args.seconds)
        print(f"{name:36s} {len(body):>9,d} B  sniffed {sniffed * 1e6:9.1f} µs  "
              f"unsniffed {passed * 1e6:9.1f} µs  ratio {sniffed / passed:5.2f}×")


if __name__ == "__main__":
    main()
