"""The MCP adapter: where the policy-relevant parts of MCP messages are.

Pure functions over parsed JSON-RPC messages (`extproc.mcp.jsonrpc`), in the
style of the LLM provider adapters:
- a client request: its method and tool name, whether its `Mcp-Method` /
  `Mcp-Name` headers (the 2026-07-28 protocol) agree with its body, and the
  strings of a `tools/call`'s arguments as `TextPart`s;
- a server message: the strings of a `tools/call` result (`content[]`,
  `structuredContent`), the tools of a `tools/list` result and the strings of
  each tool's definition (description, schemas, annotations), which are the
  surface of tool poisoning.
Locators are JSON paths from the message root, so `replace_values` rewrites
a message in place and it stays a valid JSON-RPC message. Object keys are
read too (`argument_keys`, `result_keys`, `notification_keys`): a key cannot
be rewritten in flight, so one a rule matches refuses its message; a key's
locator ends in `#key`, so a record never quotes it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping

from extproc.events import Headers, header_value
from extproc.llm.base import TextPart, strings_under
from extproc.mcp.jsonrpc import JsonRpcMessage

TOOLS_CALL = "tools/call"
TOOLS_LIST = "tools/list"
TOOLS_LIST_CHANGED = "notifications/tools/list_changed"
MCP_METHOD_HEADER = "mcp-method"
MCP_NAME_HEADER = "mcp-name"
# Methods whose `params` key the 2026-07-28 protocol mirrors in `Mcp-Name`.
NAME_BEARING = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
_B64_SENTINEL = re.compile(r"=\?base64\?(?P<payload>.*)\?=")


def tool_name(message: JsonRpcMessage) -> str | None:
    """The tool a `tools/call` names; None for other methods or a missing name."""
    if message.method != TOOLS_CALL:
        return None
    name = message.params.get("name")
    return name if isinstance(name, str) else None


def decode_header_value(value: str) -> str | None:
    """An `Mcp-Name` value, with the SDK's `=?base64?...?=` form decoded (None if corrupt)."""
    match = _B64_SENTINEL.fullmatch(value)
    if match is None:
        return value
    payload = match.group("payload")
    try:
        decoded = base64.b64decode(payload, validate=True)
        if base64.b64encode(decoded).decode("ascii") != payload:
            return None
        return decoded.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def header_mismatch(headers: Headers, message: JsonRpcMessage) -> str | None:
    """Why the routing headers disagree with the body, or None when they agree.

    Either header may be absent (the 2025-06-18 protocol sends neither); one that is
    present must equal the body. A gateway that judged the header while the server
    read the body (or the reverse) would be bypassed by a request whose header says
    `search_docs` and whose body says `delete_repo`.
    """
    method_header = header_value(headers, MCP_METHOD_HEADER)
    if method_header is not None and method_header != message.method:
        return "the Mcp-Method header does not match the body's method"
    name_header = header_value(headers, MCP_NAME_HEADER)
    if name_header is None:
        return None
    key = NAME_BEARING.get(message.method or "")
    if key is None:
        return "an Mcp-Name header on a method that names nothing"
    if decode_header_value(name_header) != message.params.get(key):
        return f"the Mcp-Name header does not match the body's params.{key}"
    return None


def _json_aware(parts: list[TextPart]) -> list[TextPart]:
    """A string that opens like a JSON document is read decoded, as its reader will read it."""
    return [
        TextPart(p.locator, p.text, p.kind, json=True) if p.text.lstrip()[:1] in ("{", "[") else p
        for p in parts
    ]


def argument_texts(message: JsonRpcMessage) -> list[TextPart]:
    """Every string in a `tools/call`'s arguments (the values, at any depth)."""
    out: list[TextPart] = []
    if message.method == TOOLS_CALL:
        arguments = message.params.get("arguments")
        strings_under(arguments, ("params", "arguments"), "tool_arguments", out)
    return _json_aware(out)


def result_texts(message: JsonRpcMessage) -> list[TextPart]:
    """Every string of a response's `result` except `_meta`: a tool result's content,
    structured content and error text, or any other method's answer."""
    out: list[TextPart] = []
    result = message.result
    if result is None:
        return out
    for key, value in result.items():
        if key != "_meta":
            strings_under(value, ("result", key), "tool_result", out)
    return _json_aware(out)


def notification_texts(message: JsonRpcMessage) -> list[TextPart]:
    """The strings a server notification or request carries (progress messages, logs)."""
    out: list[TextPart] = []
    strings_under(message.document.get("params"), ("params",), "notification", out)
    return _json_aware(out)


def listed_tools(message: JsonRpcMessage) -> list[tuple[int, Mapping[str, object]]]:
    """The tools of a `tools/list` result, with their index in `result.tools`."""
    result = message.result
    tools = result.get("tools") if result is not None else None
    if not isinstance(tools, list):
        return []
    return [(i, tool) for i, tool in enumerate(tools) if isinstance(tool, dict)]


def definition_texts(index: int, tool: Mapping[str, object]) -> list[TextPart]:
    """The strings of one tool definition a model reads: its poisoning surface."""
    out: list[TextPart] = []
    for key in ("title", "description", "inputSchema", "outputSchema", "annotations"):
        if key in tool:
            strings_under(tool[key], ("result", "tools", index, key), "tool_definition", out)
    return _json_aware(out)


KEY_LOCATOR = "#key"


def keys_under(node: object, path: tuple[str | int, ...], kind: str, out: list[TextPart]) -> None:
    """Every object key under `node`, at any depth, as a part located at `path..., #key`."""
    if isinstance(node, dict):
        for key, value in node.items():
            out.append(TextPart((*path, KEY_LOCATOR), str(key), kind))
            keys_under(value, (*path, key), kind, out)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            keys_under(value, (*path, index), kind, out)


def argument_keys(message: JsonRpcMessage) -> list[TextPart]:
    """The keys of a `tools/call`'s arguments (the argument names, and those below)."""
    out: list[TextPart] = []
    if message.method == TOOLS_CALL:
        keys_under(message.params.get("arguments"), ("params", "arguments"), "tool_arguments", out)
    return out


def result_keys(message: JsonRpcMessage) -> list[TextPart]:
    """The keys of a response's `result` except `_meta` (structured content's own keys)."""
    out: list[TextPart] = []
    result = message.result
    if result is not None:
        for key, value in result.items():
            if key != "_meta":
                keys_under(value, ("result", key), "tool_result", out)
    return out


def notification_keys(message: JsonRpcMessage) -> list[TextPart]:
    out: list[TextPart] = []
    keys_under(message.document.get("params"), ("params",), "notification", out)
    return out


def definition_keys(index: int, tool: Mapping[str, object]) -> list[TextPart]:
    """The keys of one tool definition's schemas and annotations (its property names)."""
    out: list[TextPart] = []
    for key in ("inputSchema", "outputSchema", "annotations"):
        if key in tool:
            keys_under(tool[key], ("result", "tools", index, key), "tool_definition", out)
    return out
