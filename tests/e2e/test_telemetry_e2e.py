"""OpenTelemetry GenAI spans and metrics, received over OTLP gRPC from a real `weir serve`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from weir_admin import eventually, metric_matching

from loadtest.otlp_receiver import OtlpReceiver
from mesh.sandbox import SANDBOX_WORKLOADS, MeshSandbox

AWS_KEY = "AKIAQ3EGUKZW5XYT7M2P"
CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_METRIC_EXPORT_INTERVAL": "300"}


@pytest.fixture(scope="module")
def otlp() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def traced(otlp: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshSandbox]:
    with MeshSandbox(
        tmp_path_factory.mktemp("otlp"),
        weir_args=("--otlp-endpoint", otlp.endpoint),
        weir_env=FAST_EXPORT,
    ) as running:
        yield running


def span_where(otlp: OtlpReceiver, **attributes: Any) -> dict[str, Any]:
    def matching() -> list[dict[str, Any]]:
        return [s for s in otlp.spans()
                if all(s["attributes"].get(k) == v for k, v in attributes.items())]
    assert eventually(lambda: bool(matching()), timeout=15), (attributes, otlp.spans())
    [span] = matching()
    return span


def test_a_streamed_call_becomes_one_genai_span_in_the_callers_trace(
    traced: MeshSandbox, otlp: OtlpReceiver
) -> None:
    client = traced.openai_client("checkout")
    chunks = list(client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "echo: streamed hello"}],
        stream=True, stream_options={"include_usage": True},
        extra_headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"},
    ))
    usage = chunks[-1].usage
    assert usage is not None
    span = span_where(otlp, **{"gen_ai.request.model": "gpt-4o-mini"})
    attributes = span["attributes"]
    assert span["name"] == "chat gpt-4o-mini"
    assert span["trace_id"] == CALLER_TRACE and span["parent_span_id"] == CALLER_SPAN
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.usage.input_tokens"] == usage.prompt_tokens
    assert attributes["gen_ai.usage.output_tokens"] == usage.completion_tokens
    # What the answer said of itself, as the SDK read it.
    assert attributes["gen_ai.response.model"] == chunks[0].model
    finished = [c.finish_reason for chunk in chunks for c in chunk.choices if c.finish_reason]
    assert finished and list(attributes["gen_ai.response.finish_reasons"]) == finished
    assert attributes["weir.workload.spiffe_id"] == SANDBOX_WORKLOADS["checkout"]
    assert attributes["weir.workload.name"] == "payments-checkout"
    assert attributes["weir.decision"] == "allow"
    assert attributes["weir.stream"] is True
    assert 0 < attributes["gen_ai.response.time_to_first_chunk"] <= span["duration_ns"] / 1e9
    assert "error.type" not in attributes
    assert span["resource"]["service.name"] == "weir"
    assert span["kind"] == 3  # SPAN_KIND_CLIENT

    # The gen_ai.client.* metrics carry the same call.
    def metric_has_model(name: str) -> bool:
        return any(p.get("gen_ai.request.model") == "gpt-4o-mini"
                   for p in otlp.metric_points(name))
    for name in ("gen_ai.client.token.usage", "gen_ai.client.operation.duration",
                 "gen_ai.client.operation.time_to_first_chunk"):
        assert eventually(lambda name=name: metric_has_model(name), timeout=15), name
    tokens = [p for p in otlp.metric_points("gen_ai.client.token.usage")
              if p.get("gen_ai.request.model") == "gpt-4o-mini"]
    assert {p["gen_ai.token.type"] for p in tokens} == {"input", "output"}
    assert {p["unit"] for p in tokens} == {"{token}"}
    duration = otlp.metric_points("gen_ai.client.operation.duration")[0]
    assert duration["unit"] == "s" and duration["gen_ai.provider.name"] == "openai"


def test_a_blocked_call_has_an_error_type_and_its_finding_as_an_event_without_the_text(
    traced: MeshSandbox, otlp: OtlpReceiver
) -> None:
    client = traced.openai_client("checkout")
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": f"my key is {AWS_KEY}"}],
        )
    span = span_where(otlp, **{"gen_ai.request.model": "gpt-4o", "weir.decision": "deny"})
    attributes = span["attributes"]
    assert attributes["error.type"] == "weir.deny"
    assert attributes["http.response.status_code"] == 403
    assert span["status"] == 2  # STATUS_CODE_ERROR
    [event] = span["events"]
    assert event["name"] == "weir.finding"
    assert event["attributes"]["weir.finding.scanner"] == "secrets"
    assert event["attributes"]["weir.finding.rule"] == "aws-access-key-id"
    assert event["attributes"]["weir.finding.action"] == "block"
    start, end = (event["attributes"]["weir.finding.span.start"],
                  event["attributes"]["weir.finding.span.end"])
    assert end - start == len(AWS_KEY)
    assert AWS_KEY not in repr(otlp.spans()) and AWS_KEY not in repr(otlp.received.metrics)
    assert eventually(lambda: metric_matching(
        traced, r'weir_otlp_spans_total\{result="exported"\}') >= 2)
    assert metric_matching(traced, r'weir_otlp_spans_total\{result="dropped"\}') == 0


def test_an_identity_refused_at_the_headers_is_a_span_with_its_spiffe_id(
    traced: MeshSandbox, otlp: OtlpReceiver
) -> None:
    with pytest.raises(openai.PermissionDeniedError):
        traced.openai_client("etl").chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hello"}],
        )
    span = span_where(otlp, **{"weir.workload.spiffe_id": SANDBOX_WORKLOADS["etl"]})
    assert span["attributes"]["weir.decision"] == "deny"
    assert span["attributes"]["error.type"] == "weir.deny"
    assert "gen_ai.request.model" not in span["attributes"]  # refused before the body was read
    assert span["name"] == "chat"
