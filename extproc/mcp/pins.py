"""Tool pinning: a digest per tool definition, per MCP server, and what changed since.

On the first `tools/list` seen from a server (keyed by its identity: the
authority the client called), each tool's digest is pinned: SHA-256 over the
canonical JSON of its name, description, input schema and annotations. A later
definition with another digest is *drift* (a "rug pull"): the store keeps the
pinned digest and the one now served. Under `pinning: enforce` a drifted tool
is hidden from `tools/list` and its calls are refused until an operator
accepts the new digest (`accept`: the admin API `POST /mcp/pins/accept`, or
`weir mcp accept`); under `audit` drift is only recorded; `off` skips pinning.

A definition a `block` rule matched (tool poisoning) is marked as such, so its
calls are refused too, whatever the pinning mode.

`PinStore` is the small interface the guard needs (`observe`, `refusal`,
`accept`, `snapshot`, all synchronous: the guard is sans-I/O), plus the async
calls the servicer and the admin API make around it (`load` a server's pins
before a call reads them, `flush` what calls recorded, `accept_now`,
`snapshot_now`). `MemoryPinStore` keeps pins for the process's life;
`FilePinStore` (`weir serve --state-dir DIR`) keeps them in
`DIR/mcp-pins.json`, written atomically, and re-reads it when another writer
changed it, so pins survive a restart. `RedisPinStore`
(`extproc.mcp.shared_pins`, `weir serve --redis`) shares them between replicas.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol

PINS_FILE = "mcp-pins.json"
# Servers x tools remembered: enough for any real fleet, bounded against a hostile one.
MAX_PINS = 100_000
_DIGEST_KEYS = ("name", "description", "inputSchema", "annotations")


def tool_digest(tool: Mapping[str, object]) -> str:
    """SHA-256 of the tool's name, description, input schema and annotations."""
    pinned = {key: tool.get(key) for key in _DIGEST_KEYS}
    canonical = json.dumps(pinned, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


class PinCheck(Enum):
    PINNED_NOW = "pinned"  # first sight: this digest is the pin
    SAME = "same"
    DRIFT = "drift"  # differs from the pin; the pin stays until accepted


@dataclass(frozen=True, slots=True)
class Pin:
    digest: str  # the accepted definition
    seen: str  # the definition served last (== digest unless drifted)
    poisoned: bool = False  # a block rule matched the definition served last
    since: float = 0.0  # when `seen` was first served

    @property
    def drifted(self) -> bool:
        return self.seen != self.digest


class PinStore(Protocol):
    # True when `load` must run before a call reads a server's pins (a shared store).
    shared: bool

    @property
    def pending(self) -> bool:
        """Whether recorded definitions wait for `flush`."""
        ...

    async def load(self, server: str) -> None:
        """Bring a server's pins up to date; raises StoreUnavailable (shared stores)."""
        ...

    async def flush(self) -> None:
        """Send what `observe` recorded to the shared store; raises StoreUnavailable."""
        ...

    async def accept_now(self, server: str, tool: str) -> bool:
        """`accept`, for the admin API; raises StoreUnavailable (shared stores)."""
        ...

    async def snapshot_now(self) -> dict[str, dict[str, dict[str, object]]]:
        """`snapshot`, for the admin API; raises StoreUnavailable (shared stores)."""
        ...

    async def close(self) -> None: ...

    def observe(self, server: str, tool: str, digest: str, *, poisoned: bool) -> PinCheck:
        """Record the definition a server now serves for a tool."""
        ...

    def refusal(self, server: str, tool: str, *, enforce_drift: bool) -> str | None:
        """Why calls of this tool are refused now (drift, poisoning), or None."""
        ...

    def accept(self, server: str, tool: str) -> bool:
        """Make the definition served last the pin; False if the tool is unknown."""
        ...

    def snapshot(self) -> dict[str, dict[str, dict[str, object]]]:
        """Every server's pins, for the admin API."""
        ...


class MemoryPinStore:
    """Pins for the life of the process."""

    shared = False

    def __init__(self) -> None:
        self._pins: dict[str, dict[str, Pin]] = {}
        self._lock = threading.Lock()  # the admin API and the exchanges share it

    def observe(self, server: str, tool: str, digest: str, *, poisoned: bool) -> PinCheck:
        with self._lock:
            self._refresh()
            tools = self._pins.setdefault(server, {})
            pin = tools.get(tool)
            if pin is None:
                if sum(len(t) for t in self._pins.values()) >= MAX_PINS:
                    return PinCheck.DRIFT  # full: an unknown tool is not trusted
                tools[tool] = Pin(digest, digest, poisoned, time.time())
                self._changed()
                return PinCheck.PINNED_NOW
            if pin.seen != digest or pin.poisoned != poisoned:
                since = time.time() if pin.seen != digest else pin.since
                tools[tool] = Pin(pin.digest, digest, poisoned, since)
                self._changed()
            return PinCheck.SAME if digest == pin.digest else PinCheck.DRIFT

    def refusal(self, server: str, tool: str, *, enforce_drift: bool) -> str | None:
        with self._lock:
            self._refresh()
            pin = self._pins.get(server, {}).get(tool)
        if pin is None:
            return None
        if pin.poisoned:
            return f"tool '{tool}' of {server} is withheld: its definition matched a block rule"
        if enforce_drift and pin.drifted:
            return (
                f"tool '{tool}' of {server} changed since it was pinned; "
                f"an operator must accept it (weir mcp accept {server} {tool})"
            )
        return None

    def accept(self, server: str, tool: str) -> bool:
        with self._lock:
            self._refresh()
            pin = self._pins.get(server, {}).get(tool)
            if pin is None:
                return False
            self._pins[server][tool] = Pin(pin.seen, pin.seen, pin.poisoned, pin.since)
            self._changed()
            return True

    def snapshot(self) -> dict[str, dict[str, dict[str, object]]]:
        with self._lock:
            self._refresh()
            return {
                server: {
                    tool: {
                        "digest": pin.digest, "seen": pin.seen, "drifted": pin.drifted,
                        "poisoned": pin.poisoned, "since": pin.since,
                    }
                    for tool, pin in sorted(tools.items())
                }
                for server, tools in sorted(self._pins.items())
            }

    @property
    def pending(self) -> bool:
        return False

    async def load(self, server: str) -> None:
        return None

    async def flush(self) -> None:
        return None

    async def accept_now(self, server: str, tool: str) -> bool:
        return self.accept(server, tool)

    async def snapshot_now(self) -> dict[str, dict[str, dict[str, object]]]:
        return self.snapshot()

    async def close(self) -> None:
        return None

    def _refresh(self) -> None:
        """Hook for stores backed by something another writer may change."""

    def _changed(self) -> None:
        """Hook: persist after a change (called with the lock held)."""


class FilePinStore(MemoryPinStore):
    """Pins in `state_dir/mcp-pins.json`, so they survive a restart."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        super().__init__()
        self._path = Path(state_dir) / PINS_FILE
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._mtime: int | None = None
        if self._path.exists():
            self._load()  # an unreadable file fails the start, not a later call
        else:
            self._changed()  # prove the directory is writable now

    def _load(self) -> None:
        try:
            raw = json.loads(self._path.read_text("utf-8"))
            pins = {
                str(server): {
                    str(tool): Pin(str(p["digest"]), str(p["seen"]), bool(p.get("poisoned")),
                                   float(p.get("since", 0.0)))
                    for tool, p in tools.items()
                }
                for server, tools in raw["servers"].items()
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{self._path}: not a Weir pin file ({exc})") from None
        self._pins = pins
        self._mtime = self._path.stat().st_mtime_ns

    def _refresh(self) -> None:
        try:
            mtime = self._path.stat().st_mtime_ns
        except OSError:
            return
        if mtime != self._mtime:
            with contextlib.suppress(ValueError):  # a foreign file: keep what we know
                self._load()

    def _changed(self) -> None:
        document = {"version": 1, "servers": {
            server: {tool: {"digest": p.digest, "seen": p.seen, "poisoned": p.poisoned,
                            "since": p.since} for tool, p in tools.items()}
            for server, tools in self._pins.items()
        }}
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(document, sort_keys=True, indent=1), "utf-8")
        os.replace(tmp, self._path)
        self._mtime = self._path.stat().st_mtime_ns
