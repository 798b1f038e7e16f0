"""One guarded LLM call in the OpenTelemetry GenAI semantic conventions, free of the SDK.

`sample_of` takes a finished `ExchangeRecord` (plus the timings the servicer
saw) and freezes what telemetry may carry: names, models, counts, the rule and
the decision, finding positions. Never a prompt, a completion, a matched text
or a token; `FindingRecord.match_hash` stays in the audit log.

The rest of this module turns a `CallSample` into span attributes, span events
and metric attributes, as plain dicts, so the mapping is a unit test and
`extproc.telemetry` only moves the results to the SDK.

Names follow the GenAI conventions (gen_ai.*, error.type, http.*); what the
conventions have no name for is `weir.*`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from extproc.audit import FindingRecord
from extproc.events import Headers, header_value
from extproc.stream import ExchangeRecord

AttributeValue = str | bool | int | float | tuple[str, ...]

# Weir's adapter name -> (gen_ai.operation.name, gen_ai.provider.name).
OPERATIONS: Mapping[str, tuple[str, str]] = {
    "openai.chat_completions": ("chat", "openai"),
    "openai.responses": ("chat", "openai"),
    "anthropic.messages": ("chat", "anthropic"),
}
MCP_PROVIDER = "mcp"
# Verdicts that mean the caller did not get what it asked for.
FAILED_VERDICTS = frozenset({"deny", "block", "error"})
FINDING_EVENT = "weir.finding"


@dataclass(frozen=True, slots=True)
class TraceContext:
    """The caller's W3C trace context, as sent; parsed (and rejected if bad) by the SDK."""

    traceparent: str
    tracestate: str | None = None


def trace_context_of(headers: Headers) -> TraceContext | None:
    traceparent = header_value(headers, "traceparent")
    if not traceparent:
        return None
    return TraceContext(traceparent, header_value(headers, "tracestate"))


@dataclass(frozen=True, slots=True)
class CallSample:
    """What telemetry may say about one guarded LLM call, frozen when it completes."""

    operation: str
    provider: str
    adapter: str  # Weir's adapter, e.g. "openai.chat_completions"
    principal: str
    identity_source: str | None
    workload: str | None
    request_model: str | None
    response_model: str | None
    finish_reasons: tuple[str, ...]
    stream: bool | None
    verdict: str
    rule: str | None
    status: int | None
    input_tokens: int | None
    output_tokens: int | None
    findings: tuple[FindingRecord, ...]
    trace: TraceContext | None
    end_ns: int  # wall clock, ns since the epoch
    duration_s: float
    first_chunk_s: float | None  # streamed calls: request start to the first released bytes
    mcp_method: str | None = None
    tool_name: str | None = None

    @property
    def start_ns(self) -> int:
        return self.end_ns - int(self.duration_s * 1e9)


def sample_of(
    record: ExchangeRecord,
    *,
    duration_s: float,
    end_ns: int,
    first_chunk_s: float | None = None,
    trace: TraceContext | None = None,
) -> CallSample | None:
    """The sample of an LLM or MCP call; None for traffic Weir did not read as either."""
    mcp_method = record.mcp_method
    if record.provider is None and mcp_method is None:
        return None
    if mcp_method is not None:
        # An MCP message: the conventions name a tool call `execute_tool`; other methods
        # (tools/list, initialize ...) by their own name.
        operation = "execute_tool" if mcp_method == "tools/call" else mcp_method
        provider = MCP_PROVIDER
    else:
        assert record.provider is not None
        operation, provider = OPERATIONS.get(record.provider, ("chat", record.provider))
    finish = record.finish_reasons
    return CallSample(
        operation=operation,
        provider=provider,
        adapter=record.provider or MCP_PROVIDER,
        principal=record.principal,
        identity_source=record.identity_source,
        workload=record.workload,
        request_model=record.model,
        response_model=record.response_model,
        finish_reasons=tuple(str(reason) for reason in finish),
        stream=record.stream,
        verdict=str(record.verdict),
        rule=record.rule,
        status=record.status,
        input_tokens=record.input_tokens,
        output_tokens=record.output_tokens,
        findings=tuple(record.findings),
        trace=trace,
        end_ns=end_ns,
        duration_s=duration_s,
        first_chunk_s=first_chunk_s if record.stream else None,
        mcp_method=mcp_method,
        tool_name=record.tool_name,
    )


def span_name(sample: CallSample) -> str:
    """`{gen_ai.operation.name} {gen_ai.request.model}`, as the conventions name spans."""
    if sample.mcp_method:
        target, name = sample.tool_name, sample.mcp_method
    else:
        target, name = sample.request_model, sample.operation
    return f"{name} {target}" if target else name


def error_type(sample: CallSample) -> str | None:
    """`error.type` for a call the caller did not get: Weir's verdict, or the HTTP status."""
    if sample.verdict in FAILED_VERDICTS:
        return f"weir.{sample.verdict}"
    if sample.status is not None and sample.status >= 400:
        return str(sample.status)
    return None


def span_attributes(sample: CallSample) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        "gen_ai.operation.name": sample.operation,
        "gen_ai.provider.name": sample.provider,
        "weir.adapter": sample.adapter,
        "weir.workload.spiffe_id": sample.principal,
        "weir.decision": sample.verdict,
    }
    optional: dict[str, AttributeValue | None] = {
        "gen_ai.request.model": sample.request_model,
        "gen_ai.response.model": sample.response_model,
        "gen_ai.response.finish_reasons": sample.finish_reasons or None,
        "gen_ai.usage.input_tokens": sample.input_tokens,
        "gen_ai.usage.output_tokens": sample.output_tokens,
        "gen_ai.response.time_to_first_chunk": sample.first_chunk_s,
        "mcp.method.name": sample.mcp_method,
        "gen_ai.tool.name": sample.tool_name,
        "http.response.status_code": sample.status,
        "error.type": error_type(sample),
        "weir.identity.source": sample.identity_source,
        "weir.workload.name": sample.workload,
        "weir.policy.rule": sample.rule,
        "weir.stream": sample.stream,
        "weir.findings": len(sample.findings) or None,
    }
    attributes.update({key: value for key, value in optional.items() if value is not None})
    if sample.mcp_method is not None:
        # An MCP tool server is no GenAI provider; the conventions name it by mcp.* alone.
        del attributes["gen_ai.provider.name"]
    return attributes


def finding_event_attributes(finding: FindingRecord) -> dict[str, AttributeValue]:
    """A finding as a span event: where and which rule, never the matched text or its hash."""
    return {
        "weir.finding.direction": finding.direction,
        "weir.finding.where": finding.where,
        "weir.finding.scanner": finding.scanner,
        "weir.finding.rule": finding.rule,
        "weir.finding.action": finding.action,
        "weir.finding.span.start": finding.start,
        "weir.finding.span.end": finding.end,
    }


def metric_attributes(sample: CallSample) -> dict[str, AttributeValue]:
    """The gen_ai.client.* metrics' attributes: bounded sets only (the policy's workload
    names, not SPIFFE IDs; no rule), so the SDK's aggregations stay small."""
    attributes: dict[str, AttributeValue] = {
        "gen_ai.operation.name": sample.operation,
        "gen_ai.provider.name": sample.provider,
    }
    if sample.workload:
        attributes["weir.workload.name"] = sample.workload
    if sample.request_model:
        attributes["gen_ai.request.model"] = sample.request_model
    if sample.response_model:
        attributes["gen_ai.response.model"] = sample.response_model
    if (error := error_type(sample)) is not None:
        attributes["error.type"] = error
    return attributes
