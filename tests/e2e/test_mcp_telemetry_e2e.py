"""MCP calls through real Envoy and Weir become OpenTelemetry spans, received over OTLP gRPC."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from mcp import MCPError
from test_mcp_e2e import POLICY, McpSandbox, text_of, with_client
from weir_admin import eventually

from loadtest.otlp_receiver import OtlpReceiver
from mesh.sandbox import SANDBOX_WORKLOADS

FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_METRIC_EXPORT_INTERVAL": "300"}


@pytest.fixture(scope="module")
def otlp() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def traced_mcp(
    otlp: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[McpSandbox]:
    sandbox = McpSandbox(
        tmp_path_factory.mktemp("mcp-otlp"),
        policy_text=POLICY,
        weir_args=("--otlp-endpoint", otlp.endpoint),
        weir_env=FAST_EXPORT,
    )
    with sandbox:
        yield sandbox


def tool_call_span(otlp: OtlpReceiver, tool: str) -> dict[str, Any]:
    def matching() -> list[dict[str, Any]]:
        return [s for s in otlp.spans()
                if s["attributes"].get("mcp.method.name") == "tools/call"
                and s["attributes"].get("gen_ai.tool.name") == tool]
    assert eventually(lambda: bool(matching()), timeout=15), otlp.spans()
    [span] = matching()
    return span


async def test_an_mcp_tool_call_becomes_an_execute_tool_span(
    traced_mcp: McpSandbox, otlp: OtlpReceiver
) -> None:
    result = await with_client(
        traced_mcp, "auto", "checkout", lambda c: c.call_tool("search_docs", {"query": "envoy"})
    )
    assert text_of(result) == "3 results for envoy"
    span = tool_call_span(otlp, "search_docs")
    attributes = span["attributes"]
    assert span["name"] == "tools/call search_docs"
    assert attributes["gen_ai.operation.name"] == "execute_tool"
    assert attributes["weir.workload.spiffe_id"] == SANDBOX_WORKLOADS["checkout"]
    assert attributes["weir.workload.name"] == "agent"
    assert attributes["weir.decision"] == "allow"
    assert "gen_ai.provider.name" not in attributes  # a tool server is no GenAI provider


async def test_a_refused_mcp_tool_call_is_a_span_with_its_decision(
    traced_mcp: McpSandbox, otlp: OtlpReceiver
) -> None:
    with pytest.raises(MCPError):
        await with_client(
            traced_mcp, "auto", "checkout", lambda c: c.call_tool("delete_repo", {"name": "x"})
        )
    attributes = tool_call_span(otlp, "delete_repo")["attributes"]
    assert attributes["weir.decision"] == "deny"
    assert attributes["error.type"] == "weir.deny"
    # The arguments never travel in telemetry.
    assert all("prod" not in str(value) and value != "x" for value in attributes.values())
