"""The cost of one guarded exchange, in process: no sockets, no Envoy, no gRPC.

`make bench` measures the whole path; this isolates what Weir's own Python does per
exchange, so a change to the SSE guard, the adapters or the scanner shows up here
first. It feeds the fake upstream's exact SSE bytes for a 100-event chat stream
through `Exchange` with the bench's full policy, and compares with the same bytes
through a workload that has no rules (the pass-through reference, same run).

    python -m loadtest.bench_exchange [--events 100] [--events-per-chunk 1] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import time

from extproc.events import BodyEvent, Direction, HeadersEvent
from extproc.scan_plan import PolicyPlans, compile_plans
from extproc.stream import Exchange
from loadtest.fake_upstream import OPENAI_CHAT, ReplyShape, content_pieces, reply_text
from loadtest.run_bench import FULL_POLICY
from mesh.policy import Policy, parse_policy

REQ, RESP = Direction.REQUEST, Direction.RESPONSE
PEER = "spiffe://cluster.local/ns/payments/sa/checkout"
NO_RULES_POLICY = FULL_POLICY.split("    request:")[0]


def stream_bytes(events: int) -> tuple[bytes, list[bytes]]:
    body = {"model": "gpt-4o", "stream": True,
            "messages": [{"role": "user", "content": "Write a short note about rivers."}]}
    pieces = content_pieces(reply_text(body), ReplyShape(events=events))
    return json.dumps(body).encode(), list(OPENAI_CHAT.events(body, pieces, None))


def served(text: str, name: str) -> tuple[Policy, PolicyPlans]:
    """A policy with its plans compiled, as the server's PolicyStore holds it."""
    policy = parse_policy(text, name)
    return policy, compile_plans(policy)


def run_once(policy: tuple[Policy, PolicyPlans], request: bytes, chunks: list[bytes]) -> int:
    exchange = Exchange(policy[0], plans=policy[1])
    headers = ((":method", "POST"), (":path", "/v1/chat/completions"),
               ("content-type", "application/json"))
    exchange.receive(HeadersEvent(REQ, headers, False,
                                  {"connection.uri_san_peer_certificate": PEER}))
    exchange.receive(BodyEvent(REQ, request, True))
    exchange.receive(HeadersEvent(RESP, ((":status", "200"),
                                         ("content-type", "text/event-stream")), False, {}))
    out = 0
    for index, chunk in enumerate(chunks):
        for action in exchange.receive(BodyEvent(RESP, chunk, index == len(chunks) - 1)):
            out += len(getattr(action, "chunk", b""))
    assert exchange.record.verdict == "allow", exchange.record
    return out


def per_exchange(
    policy: tuple[Policy, PolicyPlans], request: bytes, chunks: list[bytes], seconds: float
) -> float:
    """The best of five batches: on a shared machine the minimum is the stable figure."""
    run_once(policy, request, chunks)  # warm: JIT
    best = float("inf")
    for _ in range(5):
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds / 5 and count < 20_000:
            run_once(policy, request, chunks)
            count += 1
        best = min(best, (time.perf_counter() - started) / count)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--events-per-chunk", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="tottime", help="pstats sort key with --profile")
    args = parser.parse_args()
    request, events = stream_bytes(args.events)
    n = args.events_per_chunk
    chunks = [b"".join(events[i : i + n]) for i in range(0, len(events), n)]
    full = served(FULL_POLICY, "full.yaml")
    bare = served(NO_RULES_POLICY, "no-rules.yaml")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(200):
            run_once(full, request, chunks)
        profiler.disable()
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(30)
        return
    guarded = per_exchange(full, request, chunks, args.seconds)
    passed = per_exchange(bare, request, chunks, args.seconds)
    print(f"{len(events)} SSE events in {len(chunks)} chunks")
    print(f"full policy : {guarded * 1e3:8.3f} ms per exchange "
          f"({guarded / len(events) * 1e6:.1f} µs per event)")
    print(f"no rules    : {passed * 1e3:8.3f} ms per exchange")
    print(f"ratio       : {guarded / passed:.1f}× the pass-through exchange")


if __name__ == "__main__":
    main()
