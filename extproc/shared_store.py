"""The state Weir replicas share: token budget counters and inventory documents.

Two implementations of one small interface (`SharedStore`):

- `LocalStore`: in process, as before `--redis`; never unavailable.
- `RedisStore`: `weir serve --redis redis://HOST:PORT/DB`, redis-py's asyncio client
  with a connection pool and short timeouts (50 ms by default).

A budget counter is one Redis hash per (subject, window): field ``#used`` holds the
window's total, and one field per exchange holds what that exchange has spent so far
(with the sequence number of its last charge). `charge` *sets* an exchange's total (it
never adds), in a Lua script that checks and reserves in one step, and ignores a charge
older than one already applied, so a retried or replayed charge cannot count twice: when the store
comes back after an outage, the charges that failed are sent again (`flush`) and land
exactly once. The hash expires with its window.

Failures never hang a stream: every call is bounded by the timeout, and after a failure
the store answers `StoreUnavailable` at once for a short back-off instead of timing out
again on every request. What a caller does then is the policy's `budgetStore`
`onUnavailable`, decided by the exchange, not here.

The interface is kept small: `charge` for counters, `put_document` / `documents` for
per-replica JSON documents. MCP tool pins (`extproc.mcp.shared_pins`) use the same
client, timeouts and back-off through `RedisStore`'s pin calls: one hash per MCP server
(``weir:mcp:pins:SERVER``, a JSON pin per tool) and the set of servers
(``weir:mcp:pin-servers``); a Lua script records what a replica saw, so the first
definition any replica recorded stays the pin until an operator accepts another.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("weir.store")

DEFAULT_TIMEOUT = 0.05
# After a failure, calls fail at once for this long rather than each waiting for a timeout.
BACKOFF_SECONDS = 0.5
MAX_CONNECTIONS = 64
USED_FIELD = "#used"
# A counter outlives its window by this much, so a late correction still finds it.
EXPIRY_SLACK_SECONDS = 300

# KEYS[1] the window's hash. ARGV: charge id, its new total, the limit, ttl, admit (1/0),
# the charge's sequence number within its exchange. A charge older than one already
# applied is ignored (a replay from the outbox racing a newer charge). With admit=1 a
# charge that would take the window past the limit is not applied (the request is
# refused); otherwise it is always applied (tokens already spent). Returns
# {the window's total after the call, 1 if applied else 0}.
CHARGE_SCRIPT = """
local seq_field = ARGV[1] .. '#seq'
local used = tonumber(redis.call('HGET', KEYS[1], '#used') or '0')
if tonumber(redis.call('HGET', KEYS[1], seq_field) or '-1') >= tonumber(ARGV[6]) then
  return {used, 1}
end
local old = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local new = tonumber(ARGV[2])
local after = used - old + new
if ARGV[5] == '1' and new > old and after > tonumber(ARGV[3]) then
  return {used, 0}
end
redis.call('HSET', KEYS[1], ARGV[1], new, seq_field, ARGV[6])
if new ~= old then
  redis.call('HINCRBY', KEYS[1], '#used', new - old)
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return {after, 1}
"""


PIN_SERVERS_KEY = "weir:mcp:pin-servers"

# KEYS[1] the server's pin hash, KEYS[2] the set of servers. ARGV[1] the server,
# ARGV[2] now, then (tool, digest, poisoned 1/0) triples. A tool seen for the first time
# is pinned to its digest; a known one keeps its pin and records the digest served now
# (and since when). Returns the server's whole hash, so the caller's view is Redis's.
RECORD_PINS_SCRIPT = """
for i = 3, #ARGV, 3 do
  local tool, digest, poisoned = ARGV[i], ARGV[i + 1], ARGV[i + 2] == '1'
  local raw = redis.call('HGET', KEYS[1], tool)
  if not raw then
    redis.call('HSET', KEYS[1], tool, cjson.encode(
      {digest = digest, seen = digest, poisoned = poisoned, since = tonumber(ARGV[2])}))
  else
    local pin = cjson.decode(raw)
    if pin.seen ~= digest or pin.poisoned ~= poisoned then
      if pin.seen ~= digest then pin.since = tonumber(ARGV[2]) end
      pin.seen = digest
      pin.poisoned = poisoned
      redis.call('HSET', KEYS[1], tool, cjson.encode(pin))
    end
  end
end
redis.call('SADD', KEYS[2], ARGV[1])
return redis.call('HGETALL', KEYS[1])
"""

# KEYS[1] the server's pin hash; ARGV[1] the tool. The definition served last becomes
# the pin. Returns 1, or 0 when the tool has no pin.
ACCEPT_PIN_SCRIPT = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local pin = cjson.decode(raw)
pin.digest = pin.seen
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(pin))
return 1
"""


def pin_key(server: str) -> str:
    """The hash of one MCP server's tool pins."""
    return f"weir:mcp:pins:{server}"


class StoreUnavailable(Exception):
    """The shared store could not answer in time; the reason is safe to log."""


@dataclass(frozen=True, slots=True)
class Charge:
    """One exchange's spend in one window: set its total to ``total`` tokens."""

    key: str  # the window's counter (`budget_key`)
    charge_id: str  # the exchange's own field: its charges replace, never add
    total: int
    limit: int
    ttl: int  # seconds the counter must live: the rest of its window, plus slack
    admit: bool  # a request's reservation: refused, not applied, if it does not fit
    seq: int = 0  # the exchange's charges in order: an older one never overrides a newer


@dataclass(frozen=True, slots=True)
class ChargeResult:
    used: int  # the window's total after the call (before it, when not applied)
    applied: bool


def budget_key(scope: str, window: str, window_start: int) -> str:
    """The counter of one budget subject (``scope``) in one fixed window."""
    return f"weir:budget:{scope}:{window}:{window_start}"


class SharedStore(Protocol):
    name: str

    @property
    def up(self) -> bool: ...

    async def charge(self, charge: Charge) -> ChargeResult:
        """Check and apply one charge atomically; raises StoreUnavailable."""
        ...

    def charge_later(self, charge: Charge) -> None:
        """Apply a charge in the background, kept and retried until the store has it."""
        ...

    async def used(self, key: str) -> int:
        """A counter's total so far (0 when it does not exist); raises StoreUnavailable."""
        ...

    async def put_document(self, kind: str, owner: str, document: dict[str, object]) -> None:
        """Publish this replica's (``owner``'s) document of ``kind``; raises StoreUnavailable."""
        ...

    async def documents(self, kind: str) -> dict[str, dict[str, object]]:
        """Every replica's latest document of ``kind``, by owner; raises StoreUnavailable."""
        ...

    async def close(self) -> None: ...


class LocalStore:
    """In-process state: one replica's view, as without `--redis`."""

    name = "local"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._counters: dict[str, tuple[float, dict[str, int]]] = {}
        self._documents: dict[str, dict[str, dict[str, object]]] = {}

    @property
    def up(self) -> bool:
        return True

    async def charge(self, charge: Charge) -> ChargeResult:
        return self.charge_now(charge)

    def charge_now(self, charge: Charge) -> ChargeResult:
        now = self._clock()
        expires, fields = self._counters.get(charge.key, (0.0, {}))
        if expires <= now:
            fields = {}
        old, used = fields.get(charge.charge_id, 0), fields.get(USED_FIELD, 0)
        seq_field = f"{charge.charge_id}#seq"
        if fields.get(seq_field, -1) >= charge.seq:
            return ChargeResult(used, applied=True)
        after = used - old + charge.total
        if charge.admit and charge.total > old and after > charge.limit:
            return ChargeResult(used, applied=False)
        fields[charge.charge_id] = charge.total
        fields[seq_field] = charge.seq
        fields[USED_FIELD] = after
        self._counters[charge.key] = (now + charge.ttl, fields)
        if len(self._counters) > 4096:
            self._counters = {k: v for k, v in self._counters.items() if v[0] > now}
        return ChargeResult(after, applied=True)

    def charge_later(self, charge: Charge) -> None:
        self.charge_now(charge)

    async def used(self, key: str) -> int:
        expires, fields = self._counters.get(key, (0.0, {}))
        return fields.get(USED_FIELD, 0) if expires > self._clock() else 0

    async def put_document(self, kind: str, owner: str, document: dict[str, object]) -> None:
        self._documents.setdefault(kind, {})[owner] = document

    async def documents(self, kind: str) -> dict[str, dict[str, object]]:
        return dict(self._documents.get(kind, {}))

    async def close(self) -> None:
        return None


class RedisStore:
    """Redis behind `--redis`: atomic charges by Lua script, a pool, short timeouts."""

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        on_error: Callable[[str], None] | None = None,
        on_state: Callable[[bool], None] | None = None,
        role: str = "budget store",
    ) -> None:
        self._client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            max_connections=MAX_CONNECTIONS,
            retry_on_timeout=False,
            health_check_interval=0,
        )
        self._timeout = timeout
        self._script = self._client.register_script(CHARGE_SCRIPT)
        self._record_pins = self._client.register_script(RECORD_PINS_SCRIPT)
        self._accept_pin = self._client.register_script(ACCEPT_PIN_SCRIPT)
        self._role = role
        self._on_error = on_error or (lambda op: None)
        self._on_state = on_state or (lambda up: None)
        self._down_until = 0.0
        self._up = True
        self._last_error = ""
        # Charges not yet acknowledged, by (key, charge id): only the latest total matters.
        self._outbox: dict[tuple[str, str], Charge] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[object]] = set()

    @property
    def up(self) -> bool:
        return self._up

    @property
    def last_error(self) -> str:
        return self._last_error

    @property
    def pending_charges(self) -> int:
        return len(self._outbox)

    async def _call(self, op: str, make: Callable[[], Awaitable[Any]]) -> Any:
        if time.monotonic() < self._down_until:
            # Not tried: another call failed moments ago. This call failed all the same,
            # and counts against its own operation, whichever call found the outage.
            self._on_error(op)
            raise StoreUnavailable(f"redis unavailable ({self._last_error})")
        try:
            # The socket timeouts bound each read and connect; this bounds the whole call.
            result = await asyncio.wait_for(make(), self._timeout * 2)
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(op, exc)
            raise StoreUnavailable(f"redis {op} failed: {type(exc).__name__}") from None
        if not self._up:
            self._up = True
            self._on_state(True)
            log.info("redis is reachable again")
        return result

    def _failed(self, op: str, exc: BaseException) -> None:
        self._on_error(op)
        self._last_error = type(exc).__name__
        self._down_until = time.monotonic() + BACKOFF_SECONDS
        if self._up:
            self._up = False
            self._on_state(False)
            log.warning("redis %s failed (%s): the %s is unavailable", op, exc, self._role)
        self._ensure_flusher()

    async def charge(self, charge: Charge) -> ChargeResult:
        try:
            reply = await self._call("charge", lambda: self._run_script(charge))
        except StoreUnavailable:
            if not charge.admit:
                self._keep(charge)
            raise
        used, applied = reply
        pending = self._outbox.get((charge.key, charge.charge_id))
        if pending is not None and pending.seq <= charge.seq:
            del self._outbox[(charge.key, charge.charge_id)]
        return ChargeResult(int(used), bool(applied))

    def _run_script(self, charge: Charge) -> Awaitable[Any]:
        return self._script(
            keys=[charge.key],
            args=[charge.charge_id, charge.total, charge.limit, charge.ttl,
                  1 if charge.admit else 0, charge.seq],
        )

    def charge_later(self, charge: Charge) -> None:
        self._keep(charge)
        task = asyncio.get_running_loop().create_task(self._send_one(charge))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_one(self, charge: Charge) -> None:
        # On failure it stays in the outbox; the flusher sends it when the store is back.
        with contextlib.suppress(StoreUnavailable):
            await self.charge(charge)

    def _keep(self, charge: Charge) -> None:
        kept = self._outbox.get((charge.key, charge.charge_id))
        if kept is None or kept.seq < charge.seq:
            self._outbox[(charge.key, charge.charge_id)] = charge
        if not self._up:
            self._ensure_flusher()

    def _ensure_flusher(self) -> None:
        if self._flusher is None or self._flusher.done():
            # No running loop (a synchronous caller): nothing to flush from.
            with contextlib.suppress(RuntimeError):
                self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        while self._outbox:
            await asyncio.sleep(BACKOFF_SECONDS)
            await self.flush()

    async def flush(self) -> int:
        """Send every kept charge again; returns how many are still pending."""
        for charge in list(self._outbox.values()):
            try:
                await self.charge(charge)
            except StoreUnavailable:
                break
        return len(self._outbox)

    async def used(self, key: str) -> int:
        value = await self._call("get", lambda: self._client.hget(key, USED_FIELD))
        return int(value or 0)

    async def put_document(self, kind: str, owner: str, document: dict[str, object]) -> None:
        data = json.dumps(document, sort_keys=True)
        await self._call("put", lambda: self._client.hset(f"weir:doc:{kind}", owner, data))

    async def documents(self, kind: str) -> dict[str, dict[str, object]]:
        raw = await self._call("get", lambda: self._client.hgetall(f"weir:doc:{kind}"))
        assert isinstance(raw, dict)
        out: dict[str, dict[str, object]] = {}
        for owner, data in raw.items():
            try:
                document = json.loads(data)
            except ValueError:
                continue  # not ours to read; never fail the page for one bad entry
            if isinstance(document, dict):
                out[owner.decode() if isinstance(owner, bytes) else str(owner)] = document
        return out

    # --- MCP tool pins (extproc.mcp.shared_pins) ----------------------------------

    async def pin_table(self, server: str) -> dict[str, bytes]:
        """One server's pins: tool -> its JSON pin; raises StoreUnavailable."""
        raw = await self._call("pins", lambda: self._client.hgetall(pin_key(server)))
        return _text_keys(raw)

    async def record_pins(
        self, server: str, seen: list[tuple[str, str, bool]], now: float
    ) -> dict[str, bytes]:
        """Record (tool, digest, poisoned) as seen now; the server's pins after it."""
        args: list[str | float] = [server, now]
        for tool, digest, poisoned in seen:
            args += [tool, digest, 1 if poisoned else 0]
        reply = await self._call("pins", lambda: self._record_pins(
            keys=[pin_key(server), PIN_SERVERS_KEY], args=args
        ))
        pairs = list(reply)
        return _text_keys(dict(zip(pairs[::2], pairs[1::2], strict=True)))

    async def accept_pin(self, server: str, tool: str) -> bool:
        reply = await self._call("pins", lambda: self._accept_pin(
            keys=[pin_key(server)], args=[tool]
        ))
        return bool(reply)

    async def pin_servers(self) -> list[str]:
        raw = await self._call("pins", lambda: self._client.smembers(PIN_SERVERS_KEY))
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in raw)

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        for task in list(self._tasks):
            task.cancel()
        await self._client.aclose()


def _text_keys(raw: object) -> dict[str, bytes]:
    assert isinstance(raw, dict)
    return {
        (k.decode() if isinstance(k, bytes) else str(k)): (v if isinstance(v, bytes) else
                                                           str(v).encode())
        for k, v in raw.items()
    }
