"""The JWKS cache: TTL, one refresh per interval on unknown kids, staleness, fail closed."""

from __future__ import annotations

import asyncio

import pytest

from mesh.jwks import JwksCache
from mesh.jwt import JwksError, JwksSource, KeySet, parse_jwks
from mesh.sandbox_idp import SandboxIdp

SOURCE = JwksSource(uri="https://idp.example.com/jwks.json")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Idp:
    """A fetch function over a SandboxIdp that can rotate or go down; counts its calls."""

    def __init__(self) -> None:
        self.idp = SandboxIdp.create("https://idp.example.com")
        self.calls = 0
        self.down = False

    def __call__(self, source: JwksSource) -> KeySet:
        self.calls += 1
        if self.down:
            raise OSError("connection refused")
        return parse_jwks(self.idp.jwks())


@pytest.fixture
def idp() -> Idp:
    return Idp()


def make(idp: Idp, clock: Clock, fetches: list[str] | None = None) -> JwksCache:
    return JwksCache(
        ttl=300, max_stale=3600, refresh_interval=30, fetch=idp, timer=clock,
        on_fetch=lambda location, result: fetches.append(result) if fetches is not None else None,
    )


async def test_the_first_use_fetches_and_then_the_keys_are_cached(idp: Idp) -> None:
    clock = Clock()
    fetches: list[str] = []
    cache = make(idp, clock, fetches)
    assert cache.keys_for(SOURCE) is None
    await cache.ensure(SOURCE, "key-1")
    await cache.ensure(SOURCE, "key-1")
    assert idp.calls == 1 and fetches == ["ok"]
    keys = cache.keys_for(SOURCE)
    assert keys is not None and keys.get("key-1") is not None


async def test_keys_are_fetched_again_once_the_ttl_has_passed(idp: Idp) -> None:
    clock = Clock()
    cache = make(idp, clock)
    await cache.ensure(SOURCE, "key-1")
    clock.now += 299
    await cache.ensure(SOURCE, "key-1")
    assert idp.calls == 1
    clock.now += 2
    await cache.ensure(SOURCE, "key-1")
    assert idp.calls == 2


async def test_a_rotated_key_is_picked_up_after_one_refresh(idp: Idp) -> None:
    clock = Clock()
    cache = make(idp, clock)
    await cache.ensure(SOURCE, "key-1")
    idp.idp.rotate("key-2")
    await cache.ensure(SOURCE, "key-2")
    assert idp.calls == 2
    keys = cache.keys_for(SOURCE)
    assert keys is not None and keys.get("key-2") is not None


async def test_a_flood_of_unknown_kids_causes_one_fetch_per_interval(idp: Idp) -> None:
    clock = Clock()
    cache = make(idp, clock)
    await cache.ensure(SOURCE, "key-1")
    clock.now += 31
    await asyncio.gather(*(cache.ensure(SOURCE, f"forged-{i}") for i in range(1000)))
    assert idp.calls == 2  # the first forged kid refreshed once; the rest waited or were refused
    for i in range(1000):
        clock.now += 0.02  # 20 s more of forged kids
        await cache.ensure(SOURCE, f"forged-again-{i}")
    assert idp.calls == 2
    clock.now += 11
    await cache.ensure(SOURCE, "forged-later")
    assert idp.calls == 3


async def test_an_unreachable_idp_keeps_the_last_good_keys_until_max_staleness(idp: Idp) -> None:
    clock = Clock()
    fetches: list[str] = []
    cache = make(idp, clock, fetches)
    await cache.ensure(SOURCE, "key-1")
    idp.down = True
    clock.now += 301  # TTL over: a fetch is due, and fails
    await cache.ensure(SOURCE, "key-1")
    assert fetches == ["ok", "error"]
    assert cache.keys_for(SOURCE) is not None  # stale but good
    clock.now += 10
    await cache.ensure(SOURCE, "key-1")
    assert idp.calls == 2  # a failure is retried no sooner than the interval
    clock.now = 1000 + 3601
    assert cache.keys_for(SOURCE) is None  # past max staleness: fail closed


async def test_concurrent_first_uses_wait_for_one_fetch(idp: Idp) -> None:
    clock = Clock()
    cache = make(idp, clock)
    await asyncio.gather(*(cache.ensure(SOURCE, "key-1") for _ in range(50)))
    assert idp.calls == 1


async def test_a_fetch_that_hangs_is_cut_by_its_timeout() -> None:
    import threading

    release = threading.Event()

    def hang(source: JwksSource) -> KeySet:
        release.wait(5)
        raise JwksError("late")

    fetches: list[str] = []
    cache = JwksCache(fetch=hang, on_fetch=lambda _, result: fetches.append(result))
    quick = JwksSource(uri="https://slow.example.com/jwks", timeout_seconds=0.1)
    try:
        await asyncio.wait_for(cache.ensure(quick, "k"), 3)
    finally:
        release.set()
    assert fetches == ["error"] and cache.keys_for(quick) is None


def test_a_file_source_starts_from_the_keys_read_at_load(idp: Idp) -> None:
    keys = parse_jwks(idp.idp.jwks())
    source = JwksSource(file="/etc/weir/jwks.json", initial=keys)
    cache = make(idp, Clock())
    assert cache.keys_for(source) is keys
    assert not cache.wants_fetch(source, "key-1")
    assert idp.calls == 0


def test_a_policy_reload_that_read_new_file_keys_adopts_them_at_once(idp: Idp) -> None:
    cache = make(idp, Clock())
    old = parse_jwks(idp.idp.jwks())
    assert cache.keys_for(JwksSource(file="/etc/weir/jwks.json", initial=old)) is old
    idp.idp.rotate("key-2")
    new = parse_jwks(idp.idp.jwks())
    reloaded = JwksSource(file="/etc/weir/jwks.json", initial=new)
    assert cache.keys_for(reloaded) is new
    assert idp.calls == 0


def test_a_jwks_redirect_away_from_https_is_refused() -> None:
    import urllib.request

    from mesh.jwks import _HttpsOnlyRedirects

    request = urllib.request.Request("https://idp.example.com/jwks.json")
    with pytest.raises(JwksError, match="away from https"):
        _HttpsOnlyRedirects().redirect_request(
            request, None, 302, "Found", {}, "http://idp.example.com/jwks.json"
        )
    followed = _HttpsOnlyRedirects().redirect_request(
        request, None, 302, "Found", {}, "https://keys.example.com/jwks.json"
    )
    assert followed is not None and followed.full_url == "https://keys.example.com/jwks.json"
