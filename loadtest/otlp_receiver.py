"""A small OTLP gRPC collector for tests and load runs: it keeps what it receives.

Implements the official `TraceService` and `MetricsService` from opentelemetry-proto
on a loopback port and decodes spans and metric points into plain dicts, so a
test can assert on attribute names and values. It is not a collector for use.
"""

from __future__ import annotations

import threading
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(v) for v in value.array_value.values)
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs if isinstance(pair, KeyValue)}


@dataclass
class Received:
    spans: list[dict[str, Any]] = field(default_factory=list)
    # metric name -> every data point's attributes, with "value" (sum/count) and "unit"
    metrics: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    def __init__(self, received: Received) -> None:
        self._received = received

    def Export(self, request: Any, context: Any) -> Any:
        spans = []
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append({
                        "name": span.name,
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "kind": span.kind,
                        "status": span.status.code,
                        "attributes": _attributes(span.attributes),
                        "events": [
                            {"name": e.name, "attributes": _attributes(e.attributes)}
                            for e in span.events
                        ],
                        "resource": resource,
                        "duration_ns": span.end_time_unix_nano - span.start_time_unix_nano,
                    })
        with self._received.lock:
            self._received.spans.extend(spans)
        return trace_service_pb2.ExportTraceServiceResponse()


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):  # type: ignore[misc]
    def __init__(self, received: Received) -> None:
        self._received = received

    def Export(self, request: Any, context: Any) -> Any:
        with self._received.lock:
            for resource_metrics in request.resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        points = self._received.metrics.setdefault(metric.name, [])
                        kind = metric.WhichOneof("data")
                        for point in getattr(metric, kind).data_points:
                            entry = _attributes(point.attributes)
                            entry["unit"] = metric.unit
                            entry["count"] = getattr(point, "count", None)
                            entry["sum"] = getattr(point, "sum", None)
                            points.append(entry)
        return metrics_service_pb2.ExportMetricsServiceResponse()


class OtlpReceiver:
    """`with OtlpReceiver() as otlp:` ... `otlp.endpoint`, `otlp.received`."""

    def __init__(self, port: int = 0) -> None:
        self.received = Received()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(
            _Traces(self.received), self._server
        )
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(
            _Metrics(self.received), self._server
        )
        self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spans(self) -> list[dict[str, Any]]:
        with self.received.lock:
            return list(self.received.spans)

    def metric_points(self, name: str) -> list[dict[str, Any]]:
        with self.received.lock:
            return list(self.received.metrics.get(name, []))

    def __enter__(self) -> OtlpReceiver:
        self._server.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.stop(0)
