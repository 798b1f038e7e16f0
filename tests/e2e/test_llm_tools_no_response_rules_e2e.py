"""A workload with `tools` but no response rules: its answers' tool calls are still checked.

The official openai and anthropic SDKs behind real Envoy (mTLS SPIFFE certificates) and
Weir. Without response rules there is no scanning guard on the answer, so the tool
names are checked by the tools-checked pass-through (`extproc.response_body`): a
streamed call of a forbidden tool ends in band before any byte of its arguments, and
a non-streamed one is refused with a 403 naming the tool.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from typing import Any

import anthropic
import openai
import pytest

from mesh.sandbox import SANDBOX_POLICY, MeshSandbox

CHECKOUT_RESPONSE_RULES = (
    "    response:\n"
    "      - {scanner: secrets, action: redact}\n"
    "      - {scanner: pii, action: redact}\n"
    "      - {scanner: deny-list, action: redact, "
    'terms: ["Project Falcon", "falcon-db.internal"]}\n'
)
# The sandbox policy, with the checkout workload limited to two tools and no response rules.
POLICY = SANDBOX_POLICY.replace(CHECKOUT_RESPONSE_RULES, '    tools: ["search_docs", "get_*"]\n')
ARGUMENTS = b'{"repo": "prod", "force": true}'


@pytest.fixture(scope="module")
def tools_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshSandbox]:
    assert POLICY != SANDBOX_POLICY
    with MeshSandbox(tmp_path_factory.mktemp("tools-no-rules"), policy_text=POLICY) as sandbox:
        yield sandbox


def tool(name: str) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}


def fake_call(name: str, arguments: bytes = ARGUMENTS) -> dict[str, str]:
    return {"x-fake-tool-call": name, "x-fake-reply-b64": base64.b64encode(arguments).decode()}


def collect_calls(stream: Iterable[Any], names: list[str], arguments: list[str]) -> None:
    """Read an openai chat stream, keeping the tool names and arguments it delivers."""
    for event in stream:
        for choice in event.choices:
            for call in choice.delta.tool_calls or ():
                if call.function is not None:
                    names.append(call.function.name)
                    arguments.append(call.function.arguments or "")


def test_the_policy_has_tools_and_no_response_rules_for_checkout() -> None:
    checkout = POLICY.split("  - name: payments-checkout\n")[1].split("  - name:")[0]
    assert "tools:" in checkout and "response:" not in checkout


def test_a_streamed_call_of_a_forbidden_tool_gets_an_in_band_error_and_no_arguments(
    tools_mesh: MeshSandbox,
) -> None:
    client = tools_mesh.openai_client("checkout")
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "clean up"}],
        tools=[tool("search_docs")],
        stream=True,
        extra_headers=fake_call("delete_repo"),
    )
    names: list[str] = []
    arguments: list[str] = []
    with pytest.raises(openai.APIError) as info:
        collect_calls(stream, names, arguments)
    assert "tool call blocked by policy: tool 'delete_repo'" in str(info.value)
    assert names == [] and arguments == []


def test_a_streamed_call_of_an_allowed_tool_arrives_whole(tools_mesh: MeshSandbox) -> None:
    client = tools_mesh.openai_client("checkout")
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "search"}],
        tools=[tool("search_docs")],
        stream=True,
        extra_headers={**fake_call("search_docs", b'{"query": "envoy"}'),
                       "x-fake-split-seed": "7"},
    )
    names: list[str] = []
    arguments: list[str] = []
    collect_calls(stream, names, arguments)
    assert [n for n in names if n] == ["search_docs"]
    assert "".join(arguments) == '{"query": "envoy"}'


def test_a_non_streamed_call_of_a_forbidden_tool_is_a_403_naming_it(
    tools_mesh: MeshSandbox,
) -> None:
    client = tools_mesh.openai_client("checkout")
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "clean up"}],
            tools=[tool("search_docs")],
            extra_headers=fake_call("delete_repo"),
        )
    assert "it calls tool 'delete_repo', which is not in the workload's tools" in str(info.value)
    assert "prod" not in str(info.value)


def test_a_non_streamed_call_of_an_allowed_tool_is_answered(tools_mesh: MeshSandbox) -> None:
    client = tools_mesh.openai_client("checkout")
    reply = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "search"}],
        tools=[tool("search_docs")],
        extra_headers=fake_call("search_docs", b'{"query": "envoy"}'),
    )
    [call] = reply.choices[0].message.tool_calls or []
    assert call.function.name == "search_docs" and call.function.arguments == '{"query": "envoy"}'


def test_an_anthropic_streamed_call_of_a_forbidden_tool_raises_in_the_sdk(
    tools_mesh: MeshSandbox,
) -> None:
    client = tools_mesh.anthropic_client("checkout")
    partial = ""
    stream = client.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=100,
        messages=[{"role": "user", "content": "clean up"}],
        tools=[{"name": "search_docs", "input_schema": {"type": "object"}}],
        extra_headers=fake_call("delete_repo"),
    )
    with pytest.raises(anthropic.APIStatusError) as info, stream as events:
        for event in events:
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                partial += event.delta.partial_json
    assert "tool call blocked by policy: tool 'delete_repo'" in str(info.value)
    assert partial == ""
