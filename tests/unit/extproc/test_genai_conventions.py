"""A finished exchange in the OpenTelemetry GenAI conventions: names, never content."""

from __future__ import annotations

from extproc.audit import FindingRecord
from extproc.genai_conventions import (
    finding_event_attributes,
    metric_attributes,
    sample_of,
    span_attributes,
    span_name,
    trace_context_of,
)
from extproc.stream import ExchangeRecord

CHECKOUT = "spiffe://cluster.local/ns/payments/sa/checkout"


def record(**fields: object) -> ExchangeRecord:
    base: dict[str, object] = dict(
        principal=CHECKOUT, identity_source="peer-certificate", workload="payments-checkout",
        provider="anthropic.messages", model="claude-sonnet-4", stream=True, verdict="allow",
        rule="payments-checkout", status=200, input_tokens=10, output_tokens=20,
    )
    return ExchangeRecord(**{**base, **fields})  # type: ignore[arg-type]


def test_an_allowed_streamed_call_carries_the_genai_attributes() -> None:
    sample = sample_of(record(), duration_s=1.5, end_ns=2_000_000_000, first_chunk_s=0.25)
    assert sample is not None
    assert span_name(sample) == "chat claude-sonnet-4"
    assert sample.start_ns == 500_000_000
    assert span_attributes(sample) == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4", "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.output_tokens": 20, "gen_ai.response.time_to_first_chunk": 0.25,
        "http.response.status_code": 200, "weir.adapter": "anthropic.messages",
        "weir.workload.spiffe_id": CHECKOUT, "weir.decision": "allow",
        "weir.identity.source": "peer-certificate", "weir.workload.name": "payments-checkout",
        "weir.policy.rule": "payments-checkout", "weir.stream": True,
    }
    assert metric_attributes(sample) == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4", "weir.workload.name": "payments-checkout",
    }


def test_a_blocked_call_names_its_error_type_and_a_non_streamed_one_has_no_first_chunk() -> None:
    sample = sample_of(record(verdict="deny", status=403, stream=False),
                       duration_s=0.1, end_ns=10**9, first_chunk_s=0.05)
    assert sample is not None
    attributes = span_attributes(sample)
    assert attributes["error.type"] == "weir.deny"
    assert "gen_ai.response.time_to_first_chunk" not in attributes
    assert metric_attributes(sample)["error.type"] == "weir.deny"


def test_an_upstream_error_is_its_status_and_a_non_llm_exchange_is_no_sample() -> None:
    sample = sample_of(record(status=429), duration_s=0.1, end_ns=10**9)
    assert sample is not None and span_attributes(sample)["error.type"] == "429"
    assert sample_of(record(provider=None), duration_s=0.1, end_ns=10**9) is None


def test_a_finding_event_names_the_rule_and_span_but_neither_text_nor_hash() -> None:
    finding = FindingRecord("request", "messages[0].content", "secrets", "aws-access-key-id",
                            "redact", 4, 24, "hmac-sha256:" + "f" * 32)
    event = finding_event_attributes(finding)
    assert event["weir.finding.rule"] == "aws-access-key-id"
    assert (event["weir.finding.span.start"], event["weir.finding.span.end"]) == (4, 24)
    assert not any("hmac" in str(value) for value in event.values())


def test_the_traceparent_header_is_read_case_insensitively() -> None:
    context = trace_context_of((("TraceParent", "00-abc-def-01"), ("tracestate", "a=b")))
    assert context is not None and context.tracestate == "a=b"
    assert trace_context_of((("x", "y"),)) is None


def test_an_mcp_tool_call_recorded_by_a_later_lane_is_named_as_the_conventions_say() -> None:
    # MCP is not in ExchangeRecord yet: a record carrying the fields is read as one.
    class McpRecord(ExchangeRecord):
        __slots__ = ("mcp_method", "tool_name")

    mcp = McpRecord(principal=CHECKOUT, provider="mcp", verdict="allow")
    mcp.mcp_method, mcp.tool_name = "tools/call", "search"
    sample = sample_of(mcp, duration_s=0.1, end_ns=10**9)
    assert sample is not None and span_name(sample) == "tools/call search"
    attributes = span_attributes(sample)
    assert attributes["gen_ai.operation.name"] == "execute_tool"
    assert attributes["mcp.method.name"] == "tools/call"
    assert attributes["gen_ai.tool.name"] == "search"
