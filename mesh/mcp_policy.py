"""A workload's tool rules: the `tools` allow-list and the `mcp` section.

`tools` is a list of name globs (only `*` is special); absent means any tool.
It governs MCP `tools/call` and `tools/list`. The `mcp` section holds the
scanners applied to `tools/call` arguments (`request`) and to what tool
servers send back: results and tool definitions (`response`), plus the
pinning mode (`enforce | audit | off`, default `audit`), validated here at
load and carried for the pinning store.

The document's `pinStore` says what MCP calls do while the shared pin store
(Redis, `weir serve --redis`) does not answer, in the words of `budgetStore`:

```yaml
pinStore:
  onUnavailable: closed   # closed: refuse tools/call and tools/list (503); open: allow, unpinned
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from mesh.policy import ScanRule

PINNING_MODES = ("enforce", "audit", "off")
PIN_STORE_CLOSED, PIN_STORE_OPEN = "closed", "open"
DEFAULT_PINNING = "audit"
# The path MCP clients POST to when a policy names none.
DEFAULT_MCP_PATHS = ("/mcp",)
MAX_TOOL_GLOB_CHARS = 200
# Tool names in MCP are short identifiers; a glob with other characters is a typo.
_TOOL_GLOB = re.compile(r"[A-Za-z0-9_.\-/*]+")


def tool_glob_problem(pattern: str) -> str | None:
    if not pattern:
        return "must not be empty"
    if len(pattern) > MAX_TOOL_GLOB_CHARS:
        return f"longer than {MAX_TOOL_GLOB_CHARS} characters"
    if not _TOOL_GLOB.fullmatch(pattern):
        return "a tool glob may hold letters, digits, '_', '-', '.', '/' and '*' only"
    return None


def mcp_path_problem(path: str) -> str | None:
    if not path.startswith("/"):
        return "must start with '/'"
    if any(ch in path for ch in "?#*") or any(ch.isspace() for ch in path):
        return "a path, without query, fragment, glob or whitespace"
    return None


class PinStoreDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    on_unavailable: Literal["closed", "open"] = Field(default="closed", alias="onUnavailable")


@dataclass(frozen=True, slots=True)
class PinStoreRule:
    """What a pinned MCP call does while the shared pin store is unreachable."""

    on_unavailable: str = PIN_STORE_CLOSED

    @property
    def fails_closed(self) -> bool:
        return self.on_unavailable == PIN_STORE_CLOSED


def build_pin_store(doc: PinStoreDoc | None) -> PinStoreRule:
    return PinStoreRule() if doc is None else PinStoreRule(doc.on_unavailable)


@dataclass(frozen=True)
class ToolRules:
    """The `tools` globs of one workload (None: any tool) and its `mcp` section."""

    tools: tuple[str, ...] | None = None
    request: tuple[ScanRule, ...] = ()
    response: tuple[ScanRule, ...] = ()
    pinning: str = DEFAULT_PINNING
    _tool_res: tuple[re.Pattern[str], ...] = field(
        init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        res = tuple(_compile(p) for p in self.tools or ())
        object.__setattr__(self, "_tool_res", res)

    def matching_tool_pattern(self, name: str) -> str | None:
        """The first `tools` glob that covers `name`; `*` when the list is absent."""
        if self.tools is None:
            return "*"
        for pattern, rx in zip(self.tools, self._tool_res, strict=True):
            if rx.fullmatch(name):
                return pattern
        return None

    def allows_tool(self, name: str) -> bool:
        return self.matching_tool_pattern(name) is not None


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


@dataclass(frozen=True)
class ToolDecision:
    """Whether a workload may use a tool, and why, naming the rule."""

    allowed: bool
    rule: str
    reason: str


def decide_tool(workload_name: str | None, rules: ToolRules | None, tool: str) -> ToolDecision:
    if workload_name is None or rules is None:
        return ToolDecision(True, "defaultAction", f"no workload rule restricts tool '{tool}'")
    pattern = rules.matching_tool_pattern(tool)
    if pattern is None:
        allowed = ", ".join(rules.tools or ())
        return ToolDecision(
            False,
            workload_name,
            f"tool '{tool}' is not in workload '{workload_name}' tools [{allowed}]",
        )
    if rules.tools is None:
        return ToolDecision(True, workload_name, f"workload '{workload_name}' allows any tool")
    return ToolDecision(
        True,
        workload_name,
        f"tool '{tool}' is allowed by workload '{workload_name}' (pattern '{pattern}')",
    )
