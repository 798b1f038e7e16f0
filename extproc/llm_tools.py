"""The tools an LLM request offers the model, read for the workload's `tools` allow-list.

One list of names per request, whatever the API: OpenAI chat's
`tools[].function.name` (and the legacy `functions[].name`), OpenAI responses'
`tools[].name` for function tools, Anthropic's `tools[].name`. Built-in tools
that carry no name (web search, code interpreter) are not governed here; a
tool definition whose name is not a string is reported as such, so it is
refused rather than waved through.
"""

from __future__ import annotations

from collections.abc import Mapping

from mesh.mcp_policy import ToolRules

UNNAMED = "(unnamed)"
# The "scanner" of a finding that records a blocked call of a forbidden tool.
TOOLS_SCANNER = "tools"


def offered_tools(document: Mapping[str, object]) -> list[str]:
    names: list[str] = []
    tools = document.get("tools")
    if isinstance(tools, list):
        for tool in tools:
            if not isinstance(tool, dict):
                continue
            function = tool.get("function")
            if isinstance(function, dict):
                names.append(_name(function.get("name")))
            elif "name" in tool:
                names.append(_name(tool.get("name")))
    functions = document.get("functions")
    if isinstance(functions, list):
        names.extend(_name(f.get("name")) for f in functions if isinstance(f, dict))
    return names


def _name(value: object) -> str:
    return value if isinstance(value, str) and value else UNNAMED


def forbidden_tool(document: Mapping[str, object], workload: str, rules: ToolRules) -> str | None:
    """Why the request offers a tool outside the workload's `tools`, or None."""
    if rules.tools is None:
        return None
    for name in offered_tools(document):
        if not rules.allows_tool(name):
            allowed = ", ".join(rules.tools)
            return f"tool '{name}' is not in workload '{workload}' tools [{allowed}]"
    return None


def streamed_tool_names(payload: object) -> list[str]:
    """The tool names a response event (or whole response) calls.

    OpenAI chat: `choices[].delta.tool_calls[].function.name` (and `message` in a
    whole reply, and the legacy `function_call`); OpenAI responses: a
    `function_call` item (`item` of `response.output_item.added`, or `output[]`);
    Anthropic: a `tool_use` block (`content_block` of `content_block_start`, or
    `content[]`).
    """
    names: list[str] = []
    if not isinstance(payload, dict):
        return names
    for choice in payload.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        for key in ("delta", "message"):
            part = choice.get(key)
            if not isinstance(part, dict):
                continue
            for call in part.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and "name" in function:
                    names.append(_name(function.get("name")))
            legacy = part.get("function_call")
            if isinstance(legacy, dict) and "name" in legacy:
                names.append(_name(legacy.get("name")))
    items = [payload.get("item"), payload.get("content_block")]
    for key in ("output", "content"):
        value = payload.get(key)
        if isinstance(value, list):
            items.extend(value)
    response = payload.get("response")
    if isinstance(response, dict) and isinstance(response.get("output"), list):
        items.extend(response["output"])
    for item in items:
        if isinstance(item, dict) and item.get("type") in ("function_call", "tool_use"):
            names.append(_name(item.get("name")))
    return names


def forbidden_call(payload: object, rules: ToolRules) -> str | None:
    """The first tool a response calls outside the workload's `tools`, or None."""
    if rules.tools is None:
        return None
    for name in streamed_tool_names(payload):
        if not rules.allows_tool(name):
            return name
    return None
