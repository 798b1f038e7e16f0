"""MCP tool pins shared by every replica through Redis (`weir serve --redis`).

The guard reads pins synchronously (it is sans-I/O), so this store keeps a view
of each server's pins in process and the servicer keeps that view true around
each call, never blocking the event loop on Redis:

- before an MCP call reads pins (a `tools/call`'s refusal check, a
  `tools/list`'s drift check), the exchange asks for its server's pins and the
  servicer `load`s them: one `HGETALL`, bounded by `--redis-timeout`. A pin
  recorded or accepted on another replica is therefore seen by the next call;
- what a call's `tools/list` showed (`observe`) is applied to the view at once
  and sent by `flush` right after, before the answer's bytes go out, in one Lua
  script per server that keeps the first definition any replica recorded as the
  pin (two replicas pinning at once cannot both win);
- `weir mcp accept` on any replica's admin API writes Redis directly
  (`accept_now`), so it takes effect on every replica's next call.

When Redis does not answer, `load` raises `StoreUnavailable` and the policy's
`pinStore.onUnavailable` decides (`extproc.mcp.guard`); a failed `flush` keeps
its observations and sends them with the next one.
"""

from __future__ import annotations

import json
import time

from extproc.mcp.pins import MemoryPinStore, Pin, PinCheck
from extproc.shared_store import RedisStore, StoreUnavailable

# Observations kept while Redis is away: bounded, the newest per (server, tool) wins.
MAX_PENDING = 10_000


def _pin_of(raw: bytes) -> Pin | None:
    try:
        pin = json.loads(raw)
        return Pin(str(pin["digest"]), str(pin["seen"]), bool(pin.get("poisoned")),
                   float(pin.get("since", 0.0)))
    except (ValueError, KeyError, TypeError):
        return None  # not ours: the tool is treated as never pinned


class RedisPinStore(MemoryPinStore):
    """Pins in Redis, shared by replicas; an in-process view kept fresh per call."""

    shared = True

    def __init__(self, store: RedisStore) -> None:
        super().__init__()
        self._store = store
        self._pending: dict[tuple[str, str], tuple[str, bool, float]] = {}

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    @property
    def state(self) -> str:
        """For /readyz: `up`, or `down (why, N kept)` while Redis does not answer."""
        if self._store.up:
            return "up"
        return f"down ({self._store.last_error}, {len(self._pending)} kept)"

    async def load(self, server: str) -> None:
        table = await self._store.pin_table(server)
        self._replace(server, table)

    def _replace(self, server: str, table: dict[str, bytes]) -> None:
        pins = {tool: pin for tool, raw in table.items() if (pin := _pin_of(raw)) is not None}
        with self._lock:
            self._pins[server] = pins

    def observe(self, server: str, tool: str, digest: str, *, poisoned: bool) -> PinCheck:
        check = super().observe(server, tool, digest, poisoned=poisoned)
        if len(self._pending) < MAX_PENDING or (server, tool) in self._pending:
            self._pending[(server, tool)] = (digest, poisoned, time.time())
        return check

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        by_server: dict[str, list[tuple[str, str, bool]]] = {}
        for (server, tool), (digest, poisoned, _) in pending.items():
            by_server.setdefault(server, []).append((tool, digest, poisoned))
        try:
            for server, seen in by_server.items():
                table = await self._store.record_pins(server, seen, time.time())
                self._replace(server, table)
                for tool, *_ in seen:
                    pending.pop((server, tool))
        finally:
            for key, value in pending.items():  # not sent: kept for the next flush
                self._pending.setdefault(key, value)

    async def accept_now(self, server: str, tool: str) -> bool:
        accepted = await self._store.accept_pin(server, tool)
        await self.load(server)
        return accepted

    async def snapshot_now(self) -> dict[str, dict[str, dict[str, object]]]:
        for server in await self._store.pin_servers():
            await self.load(server)
        return self.snapshot()

    async def close(self) -> None:
        await self._store.close()


__all__ = ["RedisPinStore", "StoreUnavailable"]
