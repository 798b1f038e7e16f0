"""OTLP export settings, and a worker that never makes a request wait for the collector."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from extproc.audit import FindingRecord
from extproc.genai_conventions import TraceContext
from extproc.metrics import Metrics
from extproc.stream import ExchangeRecord
from extproc.telemetry import OtlpTelemetry, TelemetryConfig, TelemetryConfigError, config_from

WEIR = shutil.which("weir") or str(Path(sys.executable).parent / "weir")
VALID = Path(__file__).parents[2] / "data" / "policies" / "valid-full.yaml"


def test_no_endpoint_means_no_telemetry() -> None:
    assert config_from(None, {}) is None


def test_the_flag_wins_over_the_environment_and_the_environment_tunes_the_queue() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_BSP_MAX_QUEUE_SIZE": "9"}
    assert config_from(None, env) == TelemetryConfig("http://collector:4317", queue_size=9)
    config = config_from("https://otel.example:4317", env)
    assert config is not None and config.endpoint == "https://otel.example:4317"
    assert not config.insecure and config_from("collector:4317", {}).insecure  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("endpoint", "env"),
    [("ftp://collector:4317", {}), ("http://collector", {}), ("http://c:99999", {}),
     ("http://c:4317", {"OTEL_BSP_SCHEDULE_DELAY": "soon"}),
     ("http://c:4317", {"OTEL_BSP_MAX_QUEUE_SIZE": "0"})],
    ids=["scheme", "no-port", "bad-port", "bad-delay", "zero-queue"],
)
def test_an_unusable_setting_is_refused_with_its_name(endpoint: str, env: dict[str, str]) -> None:
    with pytest.raises(TelemetryConfigError, match=r"OTLP endpoint|OTEL_BSP"):
        config_from(endpoint, env)


def test_serve_with_a_bad_otlp_endpoint_is_a_usage_error() -> None:
    result = subprocess.run(
        [WEIR, "serve", "--policy", str(VALID), "--otlp-endpoint", "ftp://x:1"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "weir serve: OTLP endpoint 'ftp://x:1'" in result.stderr


class StuckCollector(SpanExporter):
    """An exporter that hangs until released, as a collector that does not answer."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.exported: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(10)
        self.exported.extend(spans)
        return SpanExportResult.SUCCESS


class RefusingCollector(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.FAILURE


class NoMetrics(MetricExporter):
    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
               **kwargs: object) -> MetricExportResult:
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        return None


def llm_record(model: str = "gpt-4o") -> ExchangeRecord:
    record = ExchangeRecord(
        principal="spiffe://cluster.local/ns/payments/sa/checkout", workload="payments-checkout",
        provider="openai.chat_completions", model=model, stream=True, verdict="block",
        rule="payments-checkout", status=200, input_tokens=5, output_tokens=7,
    )
    record.findings.append(FindingRecord(
        "response", "content/0", "secrets", "aws-access-key-id", "block", 3, 23,
        "hmac-sha256:" + "a" * 32))
    return record


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


def make(metrics: Metrics, exporter: SpanExporter, **tuning: float) -> OtlpTelemetry:
    config = TelemetryConfig("http://127.0.0.1:1", **tuning)  # type: ignore[arg-type]
    return OtlpTelemetry(config, metrics.otlp_spans, span_exporter=exporter,
                         metric_exporter=NoMetrics())


def counted(metrics: Metrics, result: str) -> float:
    return metrics.otlp_spans.labels(result)._value.get()


@pytest.fixture
def stuck(metrics: Metrics) -> Iterator[tuple[OtlpTelemetry, StuckCollector]]:
    collector = StuckCollector()
    telemetry = make(metrics, collector, queue_size=8, batch_size=4, flush_interval=0.01)
    yield telemetry, collector
    collector.release.set()
    telemetry.close()


def test_a_stuck_collector_bounds_the_queue_and_counts_what_it_drops(
    stuck: tuple[OtlpTelemetry, StuckCollector], metrics: Metrics
) -> None:
    telemetry, collector = stuck
    started = time.perf_counter()
    for _ in range(200):
        telemetry.observe(llm_record(), duration_s=0.1, first_chunk_s=0.02, trace=None)
    elapsed = time.perf_counter() - started
    assert telemetry.queued <= 8
    # The worker holds one batch of at most 4 in the stuck export; the rest were dropped.
    assert counted(metrics, "dropped") >= 200 - 8 - 4
    assert elapsed < 1.0, "observe must never wait for the collector"
    collector.release.set()
    deadline = time.monotonic() + 5
    while telemetry.queued and time.monotonic() < deadline:
        time.sleep(0.01)
    telemetry.close()
    kept = len(collector.exported)
    assert kept + counted(metrics, "dropped") == 200
    assert counted(metrics, "exported") == kept


def test_a_refusing_collector_is_counted_as_failed_and_the_worker_goes_on(
    metrics: Metrics,
) -> None:
    telemetry = make(metrics, RefusingCollector(), flush_interval=0.01)
    for _ in range(3):
        telemetry.observe(llm_record(), duration_s=0.1, first_chunk_s=None, trace=None)
    telemetry.close()
    assert counted(metrics, "failed") == 3 and counted(metrics, "dropped") == 0


def test_spans_continue_a_sampled_caller_trace_and_honour_an_unsampled_one(
    metrics: Metrics,
) -> None:
    collector = StuckCollector()
    collector.release.set()
    telemetry = make(metrics, collector, flush_interval=0.01)
    trace_id, parent = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    telemetry.observe(llm_record("sampled"), duration_s=0.1, first_chunk_s=None,
                      trace=TraceContext(f"00-{trace_id}-{parent}-01", "vendor=x"))
    telemetry.observe(llm_record("unsampled"), duration_s=0.1, first_chunk_s=None,
                      trace=TraceContext(f"00-{trace_id}-{parent}-00"))
    telemetry.observe(llm_record("garbled"), duration_s=0.1, first_chunk_s=None,
                      trace=TraceContext("not-a-traceparent"))
    telemetry.close()
    spans = {span.attributes["gen_ai.request.model"]: span for span in collector.exported}
    assert set(spans) == {"sampled", "garbled"}
    sampled = spans["sampled"]
    assert format(sampled.context.trace_id, "032x") == trace_id
    assert format(sampled.parent.span_id, "016x") == parent
    assert sampled.context.trace_state.get("vendor") == "x"
    assert spans["garbled"].parent is None  # a bad traceparent starts a new trace
    [event] = sampled.events
    assert "weir.finding.match_hash" not in event.attributes
    assert not any("hmac" in str(value) for value in event.attributes.values())


def test_a_non_llm_exchange_makes_no_span(metrics: Metrics) -> None:
    collector = StuckCollector()
    collector.release.set()
    telemetry = make(metrics, collector, flush_interval=0.01)
    telemetry.observe(ExchangeRecord(principal="spiffe://x/ns/a/sa/b", verdict="allow"),
                      duration_s=0.1, first_chunk_s=None, trace=None)
    telemetry.close()
    assert collector.exported == []
