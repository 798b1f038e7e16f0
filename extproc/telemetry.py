"""OpenTelemetry export of guarded LLM calls: GenAI spans and metrics over OTLP gRPC.

Off unless an endpoint is given (`weir serve --otlp-endpoint`, or the standard
`OTEL_EXPORTER_OTLP_ENDPOINT`). When on, the request path pays one bounded
`deque.append` per call and nothing else: the span, its finding events and the
gen_ai.client.* metrics are built and exported by one worker thread.

Export never slows or fails a request:
- the queue holds at most `queue_size` calls; a call that finds it full is
  dropped and counted (`weir_otlp_spans_total{result="dropped"}`), never waited for;
- spans go out in batches, each export bounded by `export_timeout`; a collector
  that is down or slow only makes the worker wait, and the queue bound holds;
- metrics are aggregated in memory by the SDK (bounded attribute sets, see
  `genai_conventions.metric_attributes`) and exported by its periodic reader.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import Counter

from extproc import genai_conventions as conv
from extproc.genai_conventions import CallSample, TraceContext
from extproc.stream import ExchangeRecord

log = logging.getLogger("weir.telemetry")

ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
SCOPE = "weir"
# The conventions' recommended buckets for gen_ai.client.token.usage and durations.
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92
)


# The OTLP exporter logs every failed export; with the collector down that is a line
# every few seconds. One per minute says as much; weir_otlp_spans_total counts the rest.
EXPORTER_LOGGER = "opentelemetry.exporter.otlp.proto.grpc.exporter"
EXPORTER_LOG_INTERVAL = 60.0


class _OncePerInterval(logging.Filter):
    def __init__(self, interval: float) -> None:
        super().__init__()
        self._interval = interval
        self._next = 0.0
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        with self._lock:
            if now < self._next:
                return False
            self._next = now + self._interval
        return True


class TelemetryConfigError(ValueError):
    """An OTLP endpoint Weir cannot use; `weir serve` reports it and exits 2."""


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    endpoint: str  # http://host:port (plaintext) or https://host:port (TLS)
    queue_size: int = 2048  # calls waiting for the worker; more are dropped and counted
    batch_size: int = 256  # spans per export
    flush_interval: float = 1.0  # seconds between exports when the batch is not full
    export_timeout: float = 5.0  # seconds one export may take, retries included
    metrics_interval: float = 10.0  # seconds between metric exports

    @property
    def insecure(self) -> bool:
        return not self.endpoint.startswith("https://")


def config_from(
    endpoint: str | None, environ: Mapping[str, str] | None = None
) -> TelemetryConfig | None:
    """The flag wins over the environment; None when neither names an endpoint."""
    env = os.environ if environ is None else environ
    chosen = endpoint or env.get(ENDPOINT_ENV) or None
    if chosen is None:
        return None
    parts = urlsplit(chosen if "://" in chosen else f"http://{chosen}")
    try:
        port = parts.port
    except ValueError as exc:
        raise TelemetryConfigError(f"OTLP endpoint {chosen!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
        raise TelemetryConfigError(
            f"OTLP endpoint {chosen!r}: expected http://HOST:PORT or https://HOST:PORT "
            "(OTLP gRPC, usually port 4317)"
        )
    # The SDK's standard tuning variables, in milliseconds where they are times.
    return TelemetryConfig(
        endpoint=f"{parts.scheme}://{parts.netloc}",
        queue_size=_positive(env, "OTEL_BSP_MAX_QUEUE_SIZE", 2048),
        batch_size=_positive(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 256),
        flush_interval=_positive(env, "OTEL_BSP_SCHEDULE_DELAY", 1000) / 1000,
        export_timeout=_positive(env, "OTEL_BSP_EXPORT_TIMEOUT", 5000) / 1000,
        metrics_interval=_positive(env, "OTEL_METRIC_EXPORT_INTERVAL", 10000) / 1000,
    )


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) == 0:
        raise TelemetryConfigError(f"{name}={raw!r}: expected a positive whole number")
    return int(raw)


class Telemetry(Protocol):
    enabled: bool

    def observe(
        self,
        record: ExchangeRecord,
        *,
        duration_s: float,
        first_chunk_s: float | None,
        trace: TraceContext | None,
    ) -> None: ...

    def close(self) -> None: ...


class NoTelemetry:
    """Telemetry off: nothing is built, nothing is sent."""

    enabled = False

    def observe(
        self,
        record: ExchangeRecord,
        *,
        duration_s: float,
        first_chunk_s: float | None,
        trace: TraceContext | None,
    ) -> None:
        return None

    def close(self) -> None:
        return None


class _Collect(SpanProcessor):
    """Keeps the spans the worker ends, so it exports them as one batch itself."""

    def __init__(self) -> None:
        self.ended: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span)


class OtlpTelemetry:
    """Spans and metrics of guarded LLM calls, built and exported off the request path."""

    enabled = True

    def __init__(
        self,
        config: TelemetryConfig,
        spans_counter: Counter,
        *,
        span_exporter: SpanExporter | None = None,
        metric_exporter: MetricExporter | None = None,
    ) -> None:
        self._config = config
        self._counter = spans_counter
        self._queue: deque[CallSample] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "weir"}
        resource = Resource.create(attributes)
        self._exporter = span_exporter or OTLPSpanExporter(
            endpoint=config.endpoint, insecure=config.insecure, timeout=config.export_timeout
        )
        self._collected = _Collect()
        self._tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        self._tracer_provider.add_span_processor(self._collected)
        self._tracer = self._tracer_provider.get_tracer(SCOPE)
        reader = PeriodicExportingMetricReader(
            metric_exporter
            or OTLPMetricExporter(
                endpoint=config.endpoint, insecure=config.insecure, timeout=config.export_timeout
            ),
            export_interval_millis=config.metrics_interval * 1000,
            export_timeout_millis=config.export_timeout * 1000,
        )
        self._meter_provider = MeterProvider(
            resource=resource,
            metric_readers=[reader],
            shutdown_on_exit=False,
            views=[
                View(
                    instrument_name="gen_ai.client.token.usage",
                    aggregation=ExplicitBucketHistogramAggregation(TOKEN_BUCKETS),
                ),
                View(
                    instrument_name="gen_ai.client.operation.*",
                    aggregation=ExplicitBucketHistogramAggregation(DURATION_BUCKETS),
                ),
            ],
        )
        meter = self._meter_provider.get_meter(SCOPE)
        self._token_usage = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}",
            description="Input and output tokens per guarded LLM call, as the provider reports",
        )
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s",
            description="Wall time of a guarded LLM call, from request headers to its end",
        )
        self._first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk", unit="s",
            description="Streamed calls: from request headers to the first bytes released",
        )
        self._propagator = TraceContextTextMapPropagator()
        self._worker = threading.Thread(target=self._run, name="weir-otlp", daemon=True)
        self._worker.start()

    @property
    def queued(self) -> int:
        return len(self._queue)

    def observe(
        self,
        record: ExchangeRecord,
        *,
        duration_s: float,
        first_chunk_s: float | None,
        trace: TraceContext | None,
    ) -> None:
        """Called on the event loop as the exchange completes: freeze, enqueue, return."""
        if len(self._queue) >= self._config.queue_size:
            self._counter.labels("dropped").inc()
            return
        sample = conv.sample_of(
            record,
            duration_s=duration_s,
            end_ns=time.time_ns(),
            first_chunk_s=first_chunk_s,
            trace=trace,
        )
        if sample is None:
            return
        self._queue.append(sample)
        if len(self._queue) >= self._config.batch_size:
            self._wake.set()

    def close(self, timeout: float = 2.0) -> None:
        """Flush what is queued (bounded by `timeout`) and stop the worker and the SDK."""
        self._stop.set()
        self._wake.set()
        self._worker.join(timeout)
        self._meter_provider.shutdown(timeout_millis=timeout * 1000)
        self._exporter.shutdown()

    # --- the worker thread ---------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._config.flush_interval)
            self._wake.clear()
            self._drain()
        self._drain()

    def _drain(self) -> None:
        while self._queue:
            batch: list[CallSample] = []
            while self._queue and len(batch) < self._config.batch_size:
                batch.append(self._queue.popleft())
            try:
                self._export(batch)
            except Exception:  # a bug here must not kill the worker: count, log, go on
                self._counter.labels("failed").inc(len(batch))
                log.exception("building or exporting %d spans failed", len(batch))

    def _export(self, batch: Sequence[CallSample]) -> None:
        for sample in batch:
            self._record_span(sample)
            self._record_metrics(sample)
        spans, self._collected.ended = self._collected.ended, []
        if not spans:
            return  # all unsampled (the caller's traceparent said so)
        result = self._exporter.export(spans)
        outcome = "exported" if result is SpanExportResult.SUCCESS else "failed"
        self._counter.labels(outcome).inc(len(spans))

    def _record_span(self, sample: CallSample) -> None:
        context = None
        if sample.trace is not None:
            carrier = {"traceparent": sample.trace.traceparent}
            if sample.trace.tracestate:
                carrier["tracestate"] = sample.trace.tracestate
            context = self._propagator.extract(carrier)
        span = self._tracer.start_span(
            conv.span_name(sample),
            context=context,
            kind=SpanKind.CLIENT,
            attributes=conv.span_attributes(sample),
            start_time=sample.start_ns,
        )
        for finding in sample.findings:
            span.add_event(
                conv.FINDING_EVENT, conv.finding_event_attributes(finding), sample.end_ns
            )
        error = conv.error_type(sample)
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=sample.end_ns)

    def _record_metrics(self, sample: CallSample) -> None:
        attributes = conv.metric_attributes(sample)
        self._duration.record(sample.duration_s, attributes)
        if sample.first_chunk_s is not None:
            self._first_chunk.record(sample.first_chunk_s, attributes)
        for kind, count in (("input", sample.input_tokens), ("output", sample.output_tokens)):
            if count is not None:
                self._token_usage.record(count, {**attributes, "gen_ai.token.type": kind})


def start_telemetry(config: TelemetryConfig | None, spans_counter: Counter) -> Telemetry:
    if config is None:
        return NoTelemetry()
    log.info("OpenTelemetry export to %s (OTLP gRPC)", config.endpoint)
    exporter_log = logging.getLogger(EXPORTER_LOGGER)
    if not any(isinstance(f, _OncePerInterval) for f in exporter_log.filters):
        exporter_log.addFilter(_OncePerInterval(EXPORTER_LOG_INTERVAL))
    return OtlpTelemetry(config, spans_counter)
