"""The budget benchmark measures what it says: the reference has no budget, the measured
variants reserve and charge in their store (a real redis-server for the Redis one)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis

from loadtest.bench_budget import measure
from mesh.redis_server import RedisServer, redis_binary


@pytest.mark.skipif(redis_binary() is None, reason="redis-server not installed")
def test_the_redis_variant_really_charges_redis_and_the_reference_charges_nothing(
    tmp_path: Path,
) -> None:
    with RedisServer(tmp_path) as server:
        samples = asyncio.run(measure(calls=3, chunks=4, redis_url=server.url))
        client = redis.Redis.from_url(server.url)
        keys = client.keys("weir:budget:*")
        # 53 calls (50 warm-up), each corrected to its estimate: the counter holds them all.
        used = int(client.hget(keys[0], "#used") or 0)
        client.close()
    assert len(keys) == 1 and used > 53
    assert {name: len(s["request"]) for name, s in samples.items()} == {
        "reference": 3, "local": 3, "redis": 3,
    }
    assert all(len(s["chunk"]) == 12 for s in samples.values())
