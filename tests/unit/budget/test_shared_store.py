"""The shared store: atomic, idempotent charges against a real redis-server and in process,
and a Redis outage answered at once (never a hang), with the kept charges landing once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from extproc.shared_store import Charge, LocalStore, RedisStore, StoreUnavailable, budget_key
from mesh.redis_server import RedisServer, redis_binary

needs_redis = pytest.mark.skipif(redis_binary() is None, reason="redis-server not installed")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis") as server:
        yield server


@pytest.fixture
async def redis_store(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    store = RedisStore(redis_server.url)
    yield store
    await store.close()


@pytest.fixture
async def patient_store(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    """For what the Lua script guarantees, not how fast: the default 50 ms timeout is for
    a live path, and a loaded CI machine may take longer to open 30 connections at once."""
    store = RedisStore(redis_server.url, timeout=2.0)
    yield store
    await store.close()


KEY = budget_key("workload:checkout", "1h", 0)


SEQ = iter(range(1, 10**6))


def charge(
    charge_id: str, total: int, *, admit: bool = False, limit: int = 100, seq: int | None = None
) -> Charge:
    return Charge(KEY, charge_id, total, limit, ttl=60, admit=admit,
                  seq=next(SEQ) if seq is None else seq)


async def exercise(store: LocalStore | RedisStore) -> None:
    # A reservation that fits is applied; one that would pass the limit is not.
    assert (await store.charge(charge("a", 60, admit=True))).applied
    refused = await store.charge(charge("b", 50, admit=True))
    assert (refused.used, refused.applied) == (60, False)
    # Charges set an exchange's total: the same charge twice counts once.
    seventy = charge("a", 70)
    await store.charge(seventy)
    again = await store.charge(seventy)
    assert again.used == 70
    # A stale charge (an outbox replay racing a newer one) never overrides a newer total.
    assert (await store.charge(charge("a", 65, seq=seventy.seq - 1))).used == 70
    # Tokens already spent are applied past the limit, and reported as such.
    over = await store.charge(charge("c", 40))
    assert (over.used, over.applied) == (110, True)
    # A correction down (usage lower than the estimate) lowers the window's total.
    assert (await store.charge(charge("c", 10))).used == 80


async def test_the_local_store_checks_reserves_and_never_double_counts() -> None:
    await exercise(LocalStore())


@needs_redis
async def test_the_redis_store_checks_reserves_and_never_double_counts(
    patient_store: RedisStore,
) -> None:
    await exercise(patient_store)


@needs_redis
async def test_parallel_reservations_never_pass_the_limit(patient_store: RedisStore) -> None:
    results = await asyncio.gather(
        *(patient_store.charge(charge(f"r{i}", 10, admit=True)) for i in range(30))
    )
    assert sum(r.applied for r in results) == 10
    assert (await patient_store.charge(charge("probe", 0))).used == 100


@needs_redis
async def test_an_outage_fails_fast_and_kept_charges_land_once_when_redis_returns(
    redis_server: RedisServer, redis_store: RedisStore
) -> None:
    await redis_store.charge(charge("a", 30))
    redis_server.stop()
    started = time.monotonic()
    for total in (40, 50):  # a running answer's charges while the store is down
        with pytest.raises(StoreUnavailable):
            await redis_store.charge(charge("a", total))
    with pytest.raises(StoreUnavailable):
        await redis_store.charge(charge("b", 5, admit=True))
    assert time.monotonic() - started < 0.2
    assert not redis_store.up
    assert redis_store.pending_charges == 1  # only a's latest total; b was refused
    # Back, empty (no persistence): the kept total lands once, however often it is sent.
    redis_server.start()
    await asyncio.sleep(0.6)  # past the back-off
    assert await redis_store.flush() == 0
    assert await redis_store.flush() == 0
    assert (await redis_store.charge(charge("probe", 0))).used == 50
    assert redis_store.up


@needs_redis
async def test_a_call_refused_in_the_back_off_counts_as_an_error_of_its_own_operation(
    redis_server: RedisServer,
) -> None:
    # The periodic inventory publication may be what finds the outage first; the charge
    # refused right after it (without trying Redis) must still count as a charge error.
    errors: list[str] = []
    store = RedisStore(redis_server.url, on_error=errors.append)
    try:
        redis_server.stop()
        with pytest.raises(StoreUnavailable):
            await store.put_document("inventory", "replica-a", {"requests": 1})
        with pytest.raises(StoreUnavailable):
            await store.charge(charge("a", 5, admit=True))
        assert errors[0] != "charge" and errors[-1] == "charge"
    finally:
        await store.close()


@needs_redis
async def test_documents_are_shared_by_owner(redis_store: RedisStore) -> None:
    await redis_store.put_document("inventory", "replica-a", {"requests": 1})
    await redis_store.put_document("inventory", "replica-b", {"requests": 2})
    await redis_store.put_document("inventory", "replica-a", {"requests": 3})
    assert await redis_store.documents("inventory") == {
        "replica-a": {"requests": 3}, "replica-b": {"requests": 2},
    }
