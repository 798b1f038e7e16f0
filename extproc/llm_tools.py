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
