"""The `tools` allow-list on LLM calls: the official openai SDK behind Envoy mTLS and Weir."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import openai
import pytest

from mesh.sandbox import SANDBOX_POLICY, MeshSandbox

# The sandbox policy, with the checkout workload limited to two tools.
POLICY = SANDBOX_POLICY.replace(
    '    models: ["gpt-4o", "gpt-4o-mini", "claude-sonnet-*"]\n',
    '    models: ["gpt-4o", "gpt-4o-mini", "claude-sonnet-*"]\n'
    '    tools: ["search_docs", "get_*"]\n',
)


@pytest.fixture(scope="module")
def tools_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshSandbox]:
    assert POLICY != SANDBOX_POLICY
    with MeshSandbox(tmp_path_factory.mktemp("llm-tools"), policy_text=POLICY) as sandbox:
        yield sandbox


def tool(name: str) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}


def test_a_request_offering_a_forbidden_tool_gets_a_403_naming_it(tools_mesh: MeshSandbox):
    client = tools_mesh.openai_client("checkout")
    tools_mesh.clear_upstream_requests()
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "clean up"}],
            tools=[tool("search_docs"), tool("delete_repo")],
        )
    assert "delete_repo" in str(info.value) and "workload 'payments-checkout'" in str(info.value)
    assert tools_mesh.upstream_requests() == []


def test_a_request_offering_allowed_tools_is_answered(tools_mesh: MeshSandbox):
    client = tools_mesh.openai_client("checkout")
    reply = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "hello"}],
        tools=[tool("search_docs"), tool("get_weather")],
    )
    assert reply.choices


def test_a_streamed_call_of_a_forbidden_tool_gets_an_in_band_error(tools_mesh: MeshSandbox):
    client = tools_mesh.openai_client("checkout")
    reply_b64 = base64.b64encode(b'{"name": "prod", "force": true}').decode()
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "clean up"}],
        tools=[tool("search_docs")],
        stream=True,
        extra_headers={"x-fake-tool-call": "delete_repo", "x-fake-reply-b64": reply_b64},
    )
    arguments = ""
    with pytest.raises(openai.APIError) as info:
        for event in stream:
            for choice in event.choices:
                for call in choice.delta.tool_calls or ():
                    arguments += (call.function.arguments or "") if call.function else ""
    assert "tool call blocked by policy: tool 'delete_repo'" in str(info.value)
    assert "prod" not in arguments


def test_a_streamed_call_of_an_allowed_tool_arrives(tools_mesh: MeshSandbox):
    client = tools_mesh.openai_client("checkout")
    reply_b64 = base64.b64encode(b'{"query": "envoy"}').decode()
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "search"}],
        tools=[tool("search_docs")],
        stream=True,
        extra_headers={"x-fake-tool-call": "search_docs", "x-fake-reply-b64": reply_b64},
    )
    arguments = "".join(
        call.function.arguments or ""
        for event in stream
        for choice in event.choices
        for call in choice.delta.tool_calls or ()
        if call.function
    )
    assert arguments == '{"query": "envoy"}'
