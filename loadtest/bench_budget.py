"""The added latency of token budgets per request, with Redis on loopback.

In process, real Redis: the exchange state machine (`Exchange`) for one streamed LLM
call, with the servicer's budget step (`budget_ask` carried to the store and answered),
timed in wall time (a Redis round trip is waiting, not CPU), for the same workload
- without a `budget` (the reference, same run);
- with a `budget`, counted in process (`LocalStore`, no `--redis`);
- with a `budget` in a real `redis-server` on loopback (`RedisStore`).
The variants are interleaved call by call, so machine noise lands on all of them
alike. Two steps are timed: the request (headers and body in, the request released:
the reservation sits here, before the upstream sees anything) and each released
response chunk (the running charge of its output tokens). Reported: p50 and p99 of
each, and the added latency over the reference.

    python -m loadtest.bench_budget [--calls 2000] [--chunks 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from extproc.events import BodyEvent, Direction, HeadersEvent, StreamBody
from extproc.shared_store import LocalStore, RedisStore, SharedStore, StoreUnavailable
from extproc.stream import Exchange
from mesh.policy import Policy, parse_policy
from mesh.redis_server import RedisServer

REQ, RESP = Direction.REQUEST, Direction.RESPONSE
PEER = "spiffe://cluster.local/ns/payments/sa/checkout"
RULE = f"""\
trustDomain: cluster.local
workloads:
  - name: checkout
    match: ["{PEER}"]
"""
HEADERS = HeadersEvent(
    REQ,
    ((":method", "POST"), (":path", "/v1/chat/completions"), (":authority", "api.openai.com"),
     ("content-type", "application/json")),
    False,
    {"connection.uri_san_peer_certificate": PEER},
)
BODY = BodyEvent(REQ, json.dumps({
    "model": "gpt-4o", "stream": True,
    "messages": [{"role": "user", "content": "Summarise the quarterly report in three lines."}],
}).encode(), True)
RESPONSE_HEADERS = HeadersEvent(
    RESP, ((":status", "200"), ("content-type", "text/event-stream")), False
)


def chunk(i: int) -> bytes:
    payload = {"choices": [{"index": 0, "delta": {"content": f" word{i}"}}]}
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


async def step(exchange: Exchange, store: SharedStore | None, event: object) -> list[object]:
    actions: list[object] = list(exchange.receive(event))  # type: ignore[arg-type]
    if exchange.budget_ask is not None:
        assert store is not None
        try:
            result = await store.charge(exchange.budget_ask)
        except StoreUnavailable:
            actions += exchange.answer_budget(None)
        else:
            actions += exchange.answer_budget(result.used, result.applied)
    return actions


async def one_call(
    policy: Policy, store: SharedStore | None, chunks: int
) -> tuple[float, list[float]]:
    exchange = Exchange(policy)
    started = time.perf_counter()
    await step(exchange, store, HEADERS)
    released = await step(exchange, store, BODY)
    request = time.perf_counter() - started
    assert any(isinstance(a, StreamBody) for a in released), exchange.record
    await step(exchange, store, RESPONSE_HEADERS)
    per_chunk = []
    for i in range(chunks):
        started = time.perf_counter()
        await step(exchange, store, BodyEvent(RESP, chunk(i), False))
        per_chunk.append(time.perf_counter() - started)
    await step(exchange, store, BodyEvent(RESP, b"data: [DONE]\n\n", True))
    settlement = exchange.budget_settlement()
    if settlement is not None and store is not None:
        await store.charge(settlement)
    return request, per_chunk


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def measure(calls: int, chunks: int, redis_url: str) -> dict[str, dict[str, list[float]]]:
    reference = parse_policy(RULE, "reference.yaml")
    budgeted = parse_policy(RULE + "    budget: {tokens: 1000000000000, window: 1d}\n", "b.yaml")
    redis_store = RedisStore(redis_url, timeout=0.05)
    variants: dict[str, tuple[Policy, SharedStore | None]] = {
        "reference": (reference, None),
        "local": (budgeted, LocalStore()),
        "redis": (budgeted, redis_store),
    }
    samples = {name: {"request": [], "chunk": []} for name in variants}
    try:
        for _ in range(50):  # warm-up: pools, caches, the Lua script loaded
            for policy, store in variants.values():
                await one_call(policy, store, chunks)
        for _ in range(calls):
            for name, (policy, store) in variants.items():
                request, per_chunk = await one_call(policy, store, chunks)
                samples[name]["request"].append(request)
                samples[name]["chunk"].extend(per_chunk)
    finally:
        await redis_store.close()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--chunks", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp)) as server:
        samples = asyncio.run(measure(args.calls, args.chunks, server.url))
    print(f"token budgets, {args.calls} streamed calls of {args.chunks} chunks per variant, "
          "interleaved (µs of wall time)")
    print(f"{'step':<10}{'variant':<24}{'p50':>9}{'p99':>9}{'added p50':>11}{'added p99':>11}")
    labels = {"reference": "no budget (ref.)", "local": "budget, in process",
              "redis": "budget, Redis loopback"}
    for what in ("request", "chunk"):
        ref = samples["reference"][what]
        ref50, ref99 = percentile(ref, 0.5), percentile(ref, 0.99)
        for name, label in labels.items():
            values = samples[name][what]
            p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
            added = "" if name == "reference" else (
                f"{(p50 - ref50) * 1e6:11.1f}{(p99 - ref99) * 1e6:11.1f}"
            )
            print(f"{what:<10}{label:<24}{p50 * 1e6:9.1f}{p99 * 1e6:9.1f}{added}")


if __name__ == "__main__":
    main()
