"""The guarded token stream in process: the SSE guard's fast lane on and off, same run.

Feeds the fake upstream's exact SSE bytes (a chat stream of `--events` content chunks)
through a whole `Exchange` with the bench's full policy, three ways, interleaved so that
machine noise hits them alike:

- ``pass-through``: a workload with no rules (the reference: metered, not scanned);
- ``guarded, fast lane``: the full response rules, `SseGuard` as the server runs it;
- ``guarded, general path``: the same with ``SseGuard(fast_lane=False)``.

Ratios are against the pass-through measured in the same run; absolute times are this
machine's. ``--events-per-chunk`` sets how many events one response-body message
carries (Envoy hands over what the upstream wrote, often one event per message).

    python -m loadtest.bench_fast_lane [--events 200] [--events-per-chunk 1] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import pstats
import time
from collections.abc import Callable
from unittest import mock

import extproc.response_body
from extproc.sse_guard import SseGuard
from loadtest.bench_exchange import NO_RULES_POLICY, run_once, served, stream_bytes
from loadtest.run_bench import FULL_POLICY


def chunked(events: list[bytes], per_chunk: int) -> list[bytes]:
    return [b"".join(events[i : i + per_chunk]) for i in range(0, len(events), per_chunk)]


def timed(run: Callable[[], int], rounds: int) -> float:
    """Median seconds per exchange over `rounds` batches."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(20):
            run()
        samples.append((time.perf_counter() - start) / 20)
    samples.sort()
    return samples[len(samples) // 2]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--events-per-chunk", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--profile", action="store_true",
                        help="print a cProfile of the guarded exchange (fast lane on)")
    args = parser.parse_args(argv)
    request, events = stream_bytes(args.events)
    chunks = chunked(events, args.events_per_chunk)
    full, none = served(FULL_POLICY, "full.yaml"), served(NO_RULES_POLICY, "none.yaml")
    general = functools.partial(SseGuard, fast_lane=False)

    def passthrough() -> int:
        return run_once(none, request, chunks)

    def fast() -> int:
        return run_once(full, request, chunks)

    def slow() -> int:
        with mock.patch.object(extproc.response_body, "SseGuard", general):
            return run_once(full, request, chunks)

    for run in (passthrough, fast, slow):  # warm: JIT, plan caches
        run()
    results = {"pass-through": [], "guarded, fast lane": [], "guarded, general path": []}
    for _ in range(3):
        results["pass-through"].append(timed(passthrough, args.rounds))
        results["guarded, fast lane"].append(timed(fast, args.rounds))
        results["guarded, general path"].append(timed(slow, args.rounds))
    base = min(results["pass-through"])
    print(f"{args.events} content events, {args.events_per_chunk} per body message, "
          f"{len(chunks)} messages")
    for name, values in results.items():
        best = min(values)
        print(f"  {name:24s} {best * 1e3:7.3f} ms/exchange  {best / base:5.2f}x pass-through")
    fast_best, slow_best = min(results["guarded, fast lane"]), min(results["guarded, general path"])
    print(f"  fast lane / general path: {fast_best / slow_best:.2f}x")
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(50):
            fast()
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
