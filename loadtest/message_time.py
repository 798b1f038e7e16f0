"""Per-message time from two scrapes of a Prometheus histogram: the delta and its quantiles.

`make bench` reads ``weir_message_processing_seconds`` (the issue's
``weir_message_seconds``) from Weir's admin ``/metrics`` just before and just
after a load run. The difference of the two cumulative bucket counts is the
histogram of the messages of that run alone (the smoke request, the warm-up
and earlier runs cancel out). A quantile is then read as Prometheus's
``histogram_quantile`` reads it: find the bucket the rank falls in and
interpolate linearly between its lower and upper bound (0 below the first
bucket), so the figure is exact at the bounds and an estimate between them.
A rank in the ``+Inf`` bucket has no upper bound: the answer is the highest
finite bound, flagged as a lower bound (``above_last_bound``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# (upper bound in seconds, cumulative count): the `_bucket` samples of one histogram.
Buckets = list[tuple[float, float]]

MESSAGE_METRIC = "weir_message_processing_seconds"


def parse_buckets(text: str, name: str = MESSAGE_METRIC) -> Buckets:
    """The cumulative buckets of histogram ``name`` in Prometheus text, summed over labels.

    Empty when the metric is absent.
    """
    from prometheus_client.parser import text_string_to_metric_families

    totals: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name == f"{name}_bucket":
                bound = float(sample.labels["le"])
                totals[bound] = totals.get(bound, 0.0) + sample.value
    return sorted(totals.items())


def bucket_delta(before: Buckets, after: Buckets) -> Buckets:
    """``after - before``, bucket by bucket: the histogram of what happened in between.

    Both scrapes must have the same bounds (the same process); a missing
    ``before`` (the metric had no sample yet) counts as zero.
    """
    earlier = dict(before)
    if earlier and set(earlier) != {bound for bound, _ in after}:
        raise ValueError("the two scrapes have different bucket bounds")
    delta = [(bound, count - earlier.get(bound, 0.0)) for bound, count in after]
    if any(count < 0 for _, count in delta):
        raise ValueError("a bucket count went down between the scrapes (a restart?)")
    return delta


@dataclass(frozen=True)
class Quantile:
    seconds: float  # NaN when there is no sample
    above_last_bound: bool = False  # the rank is in +Inf: `seconds` is a lower bound


def histogram_quantile(q: float, buckets: Buckets) -> Quantile:
    """The q-quantile (0 < q < 1) of cumulative ``buckets``, interpolated within its bucket."""
    if not 0 < q < 1:
        raise ValueError("q must be between 0 and 1")
    if not buckets or buckets[-1][1] <= 0:
        return Quantile(math.nan)
    total = buckets[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return Quantile(lower, above_last_bound=True)
            in_bucket = count - below
            share = (rank - below) / in_bucket if in_bucket else 1.0
            return Quantile(lower + (bound - lower) * share)
        lower, below = bound, count
    return Quantile(lower, above_last_bound=True)


def fraction_at_most(bound: float, buckets: Buckets) -> float:
    """The share of samples at or below ``bound``, which must be one of the bucket bounds."""
    if not buckets or buckets[-1][1] <= 0:
        return math.nan
    for le, count in buckets:
        if math.isclose(le, bound, rel_tol=1e-9):
            return count / buckets[-1][1]
    raise ValueError(f"{bound} is not a bucket bound")


@dataclass(frozen=True)
class MessageTime:
    """The per-message time of one processor over one run."""

    count: int
    p50_s: float
    p99_s: float
    p99_above_last_bound: bool
    share_within_1ms: float
    share_within_300us: float
    buckets: Sequence[tuple[float, float]]

    def as_json(self) -> dict[str, object]:
        return {
            "count": self.count, "p50_ms": 1000 * self.p50_s, "p99_ms": 1000 * self.p99_s,
            "p99_above_last_bound": self.p99_above_last_bound,
            "share_within_1ms": self.share_within_1ms,
            "share_within_300us": self.share_within_300us,
            "buckets": [["+Inf" if math.isinf(b) else b, c] for b, c in self.buckets],
        }


def message_time(before_text: str, after_text: str, name: str = MESSAGE_METRIC) -> MessageTime:
    """The run between two scrapes, summarised."""
    delta = bucket_delta(parse_buckets(before_text, name), parse_buckets(after_text, name))
    if not delta:
        raise ValueError(f"no {name} histogram in the scrape")
    p99 = histogram_quantile(0.99, delta)

    def share(bound: float) -> float:
        try:
            return fraction_at_most(bound, delta)
        except ValueError:  # a processor with other buckets
            return math.nan

    return MessageTime(
        count=int(delta[-1][1]),
        p50_s=histogram_quantile(0.5, delta).seconds,
        p99_s=p99.seconds,
        p99_above_last_bound=p99.above_last_bound,
        share_within_1ms=share(0.001),
        share_within_300us=share(0.0003),
        buckets=delta,
    )
