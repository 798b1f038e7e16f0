"""The hold-back part of the added inter-token delay, computed exactly by replay.

A streaming guard that never releases part of a match must hold text until
what follows shows that it cannot become one: a word waits for the next
character, a whole event waits for the next event. That delay is the price of
being exact, not processing time, and it is a property of the stream and the
policy alone. So it is computed, not measured: the very events the fake
upstream sends in the inter-token run are fed, one upstream write at a time,
through an in-process guard (``extproc.sse_guard.SseGuard`` with the bench
policy's response plan; only its public ``feed``/``finish``), with zero
processing time. Upstream write ``k`` happens at ``k × interval``, so
whatever the guard releases on that write goes out at ``k × interval``:

- **gaps** (what the bench's client measures): every released ``data:`` line
  that carries text is stamped with its write's time, and the gaps between
  consecutive ones are kept, as `run_bench.inter_token_gaps` does at the
  client. Replaying through a processor that releases every write at once (the
  identity: Envoy alone) gives the reference gaps (all ``interval``).
  The hold-back part of the added delay at quantile q is
  ``Q_q(gaps through the guard) - Q_q(reference gaps)``.
- **per byte**: for each released text byte, how many upstream writes after
  the one that carried it it went out, × interval: the latency the hold-back
  adds to each token (a constant shift of the stream, which the gaps do not
  see; it shows in the time to first event).

The replayed gaps have no noise; the measured ones do (the client, the
upstream's timer, Envoy). Subtracting a quantile of one from a quantile of
the other is not sound: at p99 the measured reference gap is one interval
plus its worst jitter, while the guarded p99 falls on a held gap plus
ordinary jitter. So `with_jitter` puts the reference's measured jitter onto
the replayed gaps (every replayed gap with every measured reference gap, the
exact convolution of the two distributions): the gaps Envoy alone would have
delivered had it held text back exactly as the guard does. The bench then
splits the measured added delay at a quantile q by telescoping:

- hold-back part: ``Q_q(with_jitter) - Q_q(reference, measured)``;
- processing part: ``Q_q(guarded, measured) - Q_q(with_jitter)``;

and the two add up to the measured added delay. `predicted_gaps` adds the
difference of two per-message times drawn from a measured message-time
histogram: the check of what processing would add if it cost only its own
time (no queueing, no transport).
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class Feeder(Protocol):
    """What the replay needs of a guard (SseGuard's public surface)."""

    def feed(self, chunk: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class Identity:
    """Releases every write as it came: Envoy alone, or a do-nothing processor."""

    def feed(self, chunk: bytes) -> bytes:
        return chunk

    def finish(self) -> bytes:
        return b""


def chunk_text(line: bytes) -> str:
    """The text of one chat-completions ``data:`` line (``choices[0].delta.content``), or ""."""
    if not line.startswith(b"data: {"):
        return ""
    try:
        payload = json.loads(line[6:])
    except ValueError:
        return ""
    choices = payload.get("choices") if isinstance(payload, dict) else None
    first = choices[0] if isinstance(choices, list) and choices else {}
    delta = first.get("delta") if isinstance(first, dict) else None
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) else ""


@dataclass(frozen=True)
class Replay:
    interval_ms: float
    writes: int
    gaps_ms: tuple[float, ...]  # between consecutive released text events
    first_text_ms: float  # when the first text event went out (time to first event)
    source_text_bytes: int
    released_text_bytes: int
    # None when the released text is not the upstream's (a redaction rewrote it):
    # bytes can then not be matched to the write that carried them.
    byte_delays_ms: tuple[float, ...] | None


def replay(events: Sequence[bytes], feeder: Feeder, interval_ms: float) -> Replay:
    """Feed ``events`` (one upstream write each, ``interval_ms`` apart) and time the output."""
    source_ends: list[int] = []  # cumulative text bytes carried by writes 0..k
    carried = 0
    for event in events:
        carried += sum(len(chunk_text(line).encode()) for line in event.split(b"\n"))
        source_ends.append(carried)
    stamps: list[float] = []
    released = bytearray()
    release_steps: list[tuple[int, int]] = []  # (write index, bytes released then)
    pending = b""
    outputs = [feeder.feed(event) for event in events]
    if events:
        outputs[-1] += feeder.finish()  # the end of stream comes with the last write
    for step, out in enumerate(outputs):
        *lines, pending = (pending + out).split(b"\n")
        for line in lines:
            text = chunk_text(line).encode()
            if text:
                stamps.append(step * interval_ms)
                released += text
                release_steps.append((step, len(text)))
    gaps = tuple(b - a for a, b in itertools.pairwise(stamps))
    source = b"".join(
        chunk_text(line).encode() for event in events for line in event.split(b"\n")
    )
    delays: tuple[float, ...] | None = None
    if bytes(released) == source:
        out_delays: list[float] = []
        position = 0
        for step, size in release_steps:
            for p in range(position, position + size):
                origin = bisect.bisect_right(source_ends, p)
                out_delays.append((step - origin) * interval_ms)
            position += size
        delays = tuple(out_delays)
    return Replay(
        interval_ms=interval_ms,
        writes=len(events),
        gaps_ms=gaps,
        first_text_ms=stamps[0] if stamps else math.nan,
        source_text_bytes=len(source),
        released_text_bytes=len(released),
        byte_delays_ms=delays,
    )


def quantile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linearly interpolated: numpy's default, as the bench's."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def hold_back_part(guarded: Replay, reference: Replay, q: float) -> float:
    """The replayed schedule alone, without noise: ``Q_q`` of the guarded gaps minus the
    reference's, in ms."""
    return quantile(guarded.gaps_ms, q) - quantile(reference.gaps_ms, q)


def with_jitter(
    gaps_ms: Sequence[float], measured_reference_ms: Sequence[float], interval_ms: float,
) -> list[float]:
    """Every replayed gap plus every measured reference gap's jitter (``gap - interval``).

    A gap of 0 (two events released by the same write, read together) stays 0; no
    gap goes below 0. Empty when either side is.
    """
    jitter = [r - interval_ms for r in measured_reference_ms]
    out: list[float] = []
    for gap in gaps_ms:
        if gap == 0:
            out.extend([0.0] * len(jitter))
        else:
            out.extend(max(0.0, gap + j) for j in jitter)
    return out


def predicted_gaps(
    gaps_ms: Sequence[float], buckets: Sequence[tuple[float, float]], *, seed: int = 12,
) -> list[float]:
    """``gaps_ms`` with each event late by an independent draw of the message time.

    ``buckets`` are cumulative (upper bound in seconds, count), e.g. a
    `message_time.bucket_delta`; a draw is uniform within its bucket (the
    ``+Inf`` bucket counts as its lower bound). A gap between events a and b
    becomes ``gap + d_b - d_a``, never below 0.
    """
    rng = random.Random(seed)
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return list(gaps_ms)
    bounds, counts = [b for b, _ in buckets], [c for _, c in buckets]

    def draw_ms() -> float:
        rank = rng.random() * total
        i = bisect.bisect_right(counts, rank)
        i = min(i, len(bounds) - 1)
        lower = bounds[i - 1] if i else 0.0
        upper = bounds[i] if not math.isinf(bounds[i]) else lower
        return 1000 * (lower + (upper - lower) * rng.random())

    previous = draw_ms()
    out = []
    for gap in gaps_ms:
        current = draw_ms()
        out.append(max(0.0, gap + current - previous))
        previous = current
    return out
