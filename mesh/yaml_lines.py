"""Where things are in a YAML document: the line of each path, for messages people can act on.

Owns `line_of`, which maps a path in the policy's own notation
(`workloads[1].request[0].scanner`, see `mesh.policy`) to the 1-based line it
is written on. A path that is not in the document (a missing key) answers
with the line of its nearest ancestor that is, so a message still points
where the fix goes. The document is only composed (parsed into nodes with
their positions), never constructed: no value is built and no tag runs.
"""

from __future__ import annotations

import re

import yaml

_DOCUMENT = "<document>"


def yaml_lines(text: str) -> dict[str, int]:
    """Every path of the document and its line; empty if the text is not YAML."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError):
        return {}
    lines: dict[str, int] = {}
    if root is None:
        return lines
    stack: list[tuple[str, yaml.Node]] = [("", root)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode):
                    continue
                child = f"{path}.{key.value}" if path else str(key.value)
                lines.setdefault(child, key.start_mark.line + 1)
                stack.append((child, value))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                child = f"{path}[{i}]"
                lines.setdefault(child, item.start_mark.line + 1)
                stack.append((child, item))
    return lines


_LAST_PART = re.compile(r"(?:\.[^.\[]+|\[\d+\])$")
_MENTIONED_LINE = re.compile(r"\bline (\d+)\b")


def line_of(lines: dict[str, int], path: str, reason: str = "") -> int | None:
    """The line of `path`, or of its nearest ancestor present; None for the document."""
    if path == _DOCUMENT:
        # Syntax and duplicate-key errors name their own line in the reason.
        mentioned = _MENTIONED_LINE.search(reason)
        return int(mentioned.group(1)) if mentioned else None
    while path:
        if path in lines:
            return lines[path]
        shorter = _LAST_PART.sub("", path)
        if shorter == path:
            break
        path = shorter
    return None
