"""The pure figures of `make bench`: message-time quantiles, the hold-back replay, the targets.

Nothing here is timed: the inputs are built histograms and streams.
"""

from __future__ import annotations

import itertools
import math
import urllib.request

import grpc
import pytest

from extproc.metrics import MESSAGE_SECONDS_BUCKETS, Metrics
from loadtest import run_bench
from loadtest.bare_processor import message_seconds_observer, start_bare_processor
from loadtest.hold_back import (
    Identity,
    chunk_text,
    hold_back_part,
    predicted_gaps,
    quantile,
    replay,
    with_jitter,
)
from loadtest.message_time import (
    bucket_delta,
    fraction_at_most,
    histogram_quantile,
    message_time,
    parse_buckets,
)
from loadtest.targets import TARGETS, target_table, verdict
from protos import wire

INF = math.inf


# --- message time ----------------------------------------------------------------------


def test_a_quantile_is_interpolated_within_its_bucket() -> None:
    buckets = [(0.001, 0.0), (0.002, 10.0), (INF, 10.0)]
    assert histogram_quantile(0.5, buckets).seconds == pytest.approx(0.0015)
    assert histogram_quantile(0.99, buckets).seconds == pytest.approx(0.00199)


def test_the_first_bucket_is_interpolated_from_zero() -> None:
    assert histogram_quantile(0.5, [(0.0004, 4.0), (INF, 4.0)]).seconds == pytest.approx(0.0002)


def test_a_quantile_in_the_infinite_bucket_is_a_flagged_lower_bound() -> None:
    result = histogram_quantile(0.99, [(0.001, 90.0), (0.25, 95.0), (INF, 100.0)])
    assert result.above_last_bound and result.seconds == 0.25


def test_an_empty_histogram_has_no_quantile() -> None:
    assert math.isnan(histogram_quantile(0.99, [(0.001, 0.0), (INF, 0.0)]).seconds)
    assert math.isnan(histogram_quantile(0.99, []).seconds)


def test_the_delta_of_two_scrapes_is_the_run_between_them() -> None:
    before = [(0.001, 5.0), (INF, 7.0)]
    after = [(0.001, 15.0), (INF, 27.0)]
    assert bucket_delta(before, after) == [(0.001, 10.0), (INF, 20.0)]
    assert bucket_delta([], after) == after


def test_scrapes_of_different_processes_do_not_subtract() -> None:
    with pytest.raises(ValueError, match="different bucket bounds"):
        bucket_delta([(0.002, 1.0), (INF, 1.0)], [(0.001, 1.0), (INF, 1.0)])
    with pytest.raises(ValueError, match="went down"):
        bucket_delta([(0.001, 9.0), (INF, 9.0)], [(0.001, 1.0), (INF, 1.0)])


def test_weirs_buckets_tell_a_third_of_a_millisecond_from_one() -> None:
    below = [b for b in MESSAGE_SECONDS_BUCKETS if b <= 0.001]
    assert 0.0003 in below and 0.001 in below
    assert max(b - a for a, b in itertools.pairwise(below)) <= 0.0001 + 1e-12


def test_the_p99_of_a_run_is_read_from_weirs_own_metrics_text() -> None:
    metrics = Metrics()
    for _ in range(100):  # earlier traffic (the warm-up): must cancel out
        metrics.message_seconds.observe(0.005)
    before = metrics.render().decode()
    for _ in range(990):
        metrics.message_seconds.observe(0.00018)
    for _ in range(10):
        metrics.message_seconds.observe(0.002)
    timed = message_time(before, metrics.render().decode())
    assert timed.count == 1000
    assert timed.p99_s == pytest.approx(0.0002)  # rank 990 is the top of (150, 200] µs
    assert timed.share_within_300us == pytest.approx(0.99)
    assert timed.share_within_1ms == pytest.approx(0.99)
    assert not timed.p99_above_last_bound


def test_a_share_is_only_read_at_a_bucket_bound() -> None:
    buckets = parse_buckets(Metrics().render().decode())
    assert buckets and buckets[-1][0] == INF
    with pytest.raises(ValueError, match="not a bucket bound"):
        fraction_at_most(0.00033, [(0.001, 1.0), (INF, 1.0)])


async def test_the_timed_bare_processor_serves_the_same_histogram() -> None:
    observe, metrics_port = message_seconds_observer("127.0.0.1:0")
    server, port = await start_bare_processor("127.0.0.1:0", observe)
    scrape = f"http://127.0.0.1:{metrics_port}/metrics"
    before = urllib.request.urlopen(scrape, timeout=10).read().decode()
    messages = []
    request = wire.ProcessingRequest()
    request.request_headers.headers.headers.add(key=":path", raw_value=b"/v1/chat/completions")
    messages.append(request)
    request = wire.ProcessingRequest()
    request.request_body.body, request.request_body.end_of_stream = b"{}", True
    messages.append(request)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = wire.ExternalProcessorStub(channel)
            answers = [r async for r in stub.Process(iter(messages))]
    finally:
        await server.stop(0)
    after = urllib.request.urlopen(scrape, timeout=10).read().decode()
    assert len(answers) == 2
    timed = message_time(before, after)
    assert timed.count == 2
    assert [b for b, _ in timed.buckets][:-1] == list(MESSAGE_SECONDS_BUCKETS)


# --- the hold-back replay ----------------------------------------------------------------


def _chat(text: str) -> bytes:
    import json

    payload = {"choices": [{"index": 0, "delta": {"content": text}}]}
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


class HoldEveryThird:
    """Holds every third write and releases it with the next: a guard's hold-back."""

    def __init__(self) -> None:
        self.writes = 0
        self.held = b""

    def feed(self, chunk: bytes) -> bytes:
        self.writes += 1
        if self.writes % 3 == 0:
            self.held = chunk
            return b""
        out, self.held = self.held + chunk, b""
        return out

    def finish(self) -> bytes:
        out, self.held = self.held, b""
        return out


def test_chunk_text_reads_the_chat_delta_and_nothing_else() -> None:
    assert chunk_text(_chat(" hi").rstrip(b"\n")) == " hi"
    assert chunk_text(b"data: [DONE]") == ""
    assert chunk_text(b"data: {not json") == ""
    assert chunk_text(b'data: {"choices": []}') == ""


def test_through_envoy_alone_every_gap_is_one_interval_and_no_byte_waits() -> None:
    events = [_chat(w) for w in ("a", " b", " c", " d")]
    out = replay(events, Identity(), 20.0)
    assert out.gaps_ms == (20.0, 20.0, 20.0)
    assert out.byte_delays_ms == (0.0,) * 7
    assert out.first_text_ms == 0.0


def test_a_held_write_shows_as_one_long_and_one_short_gap() -> None:
    events = [_chat(w) for w in ("w0", "w1", "w2", "w3", "w4", "w5")]
    guarded = replay(events, HoldEveryThird(), 10.0)
    reference = replay(events, Identity(), 10.0)
    # Write 2 is held and goes out with write 3: stamps 0, 10, 30, 30, 40, 50.
    assert guarded.gaps_ms == (10.0, 20.0, 0.0, 10.0, 10.0)
    assert guarded.byte_delays_ms == (0, 0, 0, 0, 10, 10, 0, 0, 0, 0, 0, 0)
    assert hold_back_part(guarded, reference, 99) == pytest.approx(
        quantile(guarded.gaps_ms, 99) - 10.0)
    assert hold_back_part(guarded, reference, 99) > 9
    assert hold_back_part(reference, reference, 50) == 0


def test_a_write_held_at_the_end_goes_out_with_the_last() -> None:
    events = [_chat("x"), _chat("y"), _chat("z")]  # the third is held until finish
    out = replay(events, HoldEveryThird(), 10.0)
    assert out.released_text_bytes == out.source_text_bytes == 3
    assert out.gaps_ms == (10.0, 10.0)


def test_rewritten_text_cannot_be_matched_to_its_writes() -> None:
    class Redact(Identity):
        def feed(self, chunk: bytes) -> bytes:
            return chunk.replace(b"secret", b"[REDACTED]")

    out = replay([_chat("a"), _chat(" secret")], Redact(), 10.0)
    assert out.byte_delays_ms is None
    assert out.gaps_ms == (10.0,)


def test_the_bench_stream_replays_through_the_real_guard_intact() -> None:
    replays = run_bench.replay_hold_back(run_bench.QUICK)
    guarded, reference = replays["weir"], replays["reference"]
    assert guarded.released_text_bytes == reference.released_text_bytes > 0
    assert guarded.byte_delays_ms is not None
    assert all(d >= 0 and d % run_bench.QUICK.token_interval_ms == 0
               for d in guarded.byte_delays_ms)
    # The guard cannot know a word has ended before the next write: text waits.
    assert sum(guarded.byte_delays_ms) > 0
    assert set(reference.gaps_ms) == {float(run_bench.QUICK.token_interval_ms)}


def test_predicted_gaps_without_processing_time_are_the_replayed_ones() -> None:
    assert predicted_gaps([20.0, 40.0, 0.0], [(0.0, 50.0), (INF, 50.0)]) == [20.0, 40.0, 0.0]
    assert predicted_gaps([20.0], [(0.001, 0.0), (INF, 0.0)]) == [20.0]


def test_predicted_gaps_move_by_at_most_the_message_time_and_stay_positive() -> None:
    buckets = [(0.001, 0.0), (0.002, 100.0), (INF, 100.0)]
    gaps = [20.0] * 200 + [0.0] * 50
    out = predicted_gaps(gaps, buckets, seed=3)
    assert len(out) == len(gaps) and min(out) >= 0
    assert all(abs(a - b) <= 1.0 + 1e-9 for a, b in zip(out[:200], gaps[:200], strict=True))
    assert out != gaps


def test_the_two_parts_add_up_to_the_measured_added_delay() -> None:
    results = run_bench.Results(run_bench.QUICK, "now")
    events = [_chat(f" w{i}") for i in range(30)]
    results.hold_back = {"weir": replay(events, HoldEveryThird(), 20.0),
                         "reference": replay(events, Identity(), 20.0)}
    results.gaps["envoy"] = run_bench.GapResult("envoy", 1, 20, gaps_ms=[20.0, 20.5, 19.5] * 30)
    results.gaps["weir"] = run_bench.GapResult("weir", 1, 20, gaps_ms=[21.0, 41.0, 1.0] * 30)
    split = run_bench.delay_split(results)
    for q in (50, 99):
        added = (run_bench.percentile(results.gaps["weir"].gaps_ms, q)
                 - run_bench.percentile(results.gaps["envoy"].gaps_ms, q))
        assert split[f"itl_hold_back_p{q}_ms"] + split[f"itl_processing_p{q}_ms"] == (
            pytest.approx(added))
    assert split["itl_hold_back_p99_ms"] > 19  # a held write doubles a gap
    assert split["itl_schedule_p99_ms"] == pytest.approx(
        quantile(results.hold_back["weir"].gaps_ms, 99) - 20.0)
    assert "itl_predicted_processing_p99_ms" not in split  # no message-time histogram yet
    # Messages in the first bucket (at most 25 µs) predict at most that much processing.
    results.message_time["weir_itl"] = message_time("", _histogram_text(0.0))
    split = run_bench.delay_split(results)
    assert abs(split["itl_predicted_processing_p99_ms"]) <= 0.025
    assert abs(split["itl_predicted_processing_p50_ms"]) <= 0.025
    # Messages of 2 ms or so predict a processing part of that order at p99.
    results.message_time["weir_itl"] = message_time("", _histogram_text(0.002))
    split = run_bench.delay_split(results)
    assert 0.1 < split["itl_predicted_processing_p99_ms"] <= 2.5


def _histogram_text(seconds: float, count: int = 50) -> str:
    metrics = Metrics()
    for _ in range(count):
        metrics.message_seconds.observe(seconds)
    return metrics.render().decode()


def test_replayed_gaps_take_on_the_measured_jitter_of_envoy_alone() -> None:
    assert with_jitter([20.0, 40.0], [20.0, 20.0], 20.0) == [20.0, 20.0, 40.0, 40.0]
    assert with_jitter([20.0, 0.0], [19.0, 23.0], 20.0) == [19.0, 23.0, 0.0, 0.0]
    assert with_jitter([1.0], [10.0], 20.0) == [0.0]  # never below zero
    assert with_jitter([20.0], [], 20.0) == []


# --- the target table ---------------------------------------------------------------------


def test_the_table_has_the_issues_four_figures_in_order() -> None:
    assert [t.key for t in TARGETS] == [
        "weir_over_bare", "weir_over_envoy", "cpu_weir_over_bare", "message_p99_ms"]
    rows = target_table({})
    assert [r.verdict for r in rows] == ["not measured"] * 4
    assert rows[0].cells()[1] == "—"


@pytest.mark.parametrize(("key", "measured", "expected"), [
    ("weir_over_bare", 1.05, "moonshot"),
    ("weir_over_bare", 0.8, "met"),
    ("weir_over_bare", 0.79, "missed"),
    ("weir_over_envoy", 0.55, "met"),
    ("cpu_weir_over_bare", 1.05, "moonshot"),
    ("cpu_weir_over_bare", 1.5, "met"),
    ("cpu_weir_over_bare", 2.9, "missed"),
    ("message_p99_ms", 0.29, "moonshot"),
    ("message_p99_ms", 0.3, "met"),  # "< 0.3 ms": the bound itself misses the moonshot
    ("message_p99_ms", 1.0, "missed"),
])
def test_each_figure_is_judged_in_its_own_direction(
    key: str, measured: float, expected: str
) -> None:
    target = next(t for t in TARGETS if t.key == key)
    assert verdict(target, measured) == expected


def test_a_row_prints_its_figure_beside_target_and_moonshot() -> None:
    rows = target_table({"message_p99_ms": 0.4567, "weir_over_envoy": 0.31})
    assert rows[3].cells() == ("`weir_message_seconds` p99 at 32 streams", "0.457 ms",
                               "< 1 ms", "< 0.3 ms", "met")
    assert rows[1].cells()[1:] == ("0.31×", "≥ 0.5×", "≥ 0.6×", "missed")


# --- the profile summary ------------------------------------------------------------------


def test_the_profile_summary_has_modules_and_a_quotable_paragraph() -> None:
    raw = (
        "process 1:\"python\";run (asyncio/runners.py:118);"
        "feed (extproc/scanner/stream.py:40) 30\n"
        "process 1:\"python\";run (asyncio/runners.py:118);Process (extproc/server.py:70) 10\n"
    )
    summary = run_bench.summarise_profile(raw)
    assert summary["modules"][0] == ("extproc/scanner/stream.py", 75.0)
    assert "scanner (extproc/scanner) 75 %" in summary["quote"]
    assert "feed (extproc/scanner/stream.py) 75 %" in summary["quote"]
    assert run_bench.profile_quote({"samples": 0}) == "No samples."


def test_busy_cores_count_the_bench_and_the_other_work_over_the_window() -> None:
    result = run_bench.LoadResult("k6", "weir", 32, 100, None, 5.0, cpu_envoy_s=1.0,
                                  cpu_processor_s=4.0, cpu_upstream_s=2.0, cpu_client_s=1.0,
                                  foreign_cores=0.25, wall_s=8.0)
    assert run_bench.busy_cores(result) == pytest.approx(1.25)
