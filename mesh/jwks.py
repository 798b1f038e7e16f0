"""The JWKS cache: each issuer's signing keys, fetched off the event loop and kept fresh.

Rules, per key source (a JWKS file or HTTPS URI):
- Keys are fresh for ``ttl`` seconds (default 5 min) after a good fetch, in a
  cachetools ``TTLCache``. Past that, the next request that needs them fetches
  again; until that fetch is done the last good keys still serve.
- An unknown ``kid`` forces one refresh, at most one per source per
  ``refresh_interval`` (default 30 s), so a flood of forged ``kid``s costs the
  identity provider one request per interval, never one per token.
- A failed fetch keeps the last good keys until ``max_stale`` (default 1 h)
  after they were fetched; after that the source has no keys, and every token
  it should verify is refused (fail closed). A failure is retried no sooner
  than ``refresh_interval`` later.
- Concurrent requests that need the same fetch wait for one fetch.

The fetch itself runs in a worker thread (``asyncio.to_thread``) under a
timeout; ``keys_for`` never blocks, so token verification stays sans-I/O.
``on_fetch(location, result)`` is told about every fetch (``ok`` or
``error``), for the metrics.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cachetools import TTLCache

from mesh.jwt import (
    JwksError,
    JwksSource,
    KeySet,
    TokenHeader,
    TrustedIssuer,
    issuer_for,
    parse_jwks,
    peek,
)

log = logging.getLogger("weir.jwks")

DEFAULT_TTL_SECONDS = 300.0
DEFAULT_MAX_STALE_SECONDS = 3600.0
DEFAULT_REFRESH_INTERVAL_SECONDS = 30.0
# A JWKS document is small; a bigger answer is not one.
MAX_JWKS_BYTES = 512 * 1024
# Sources seen per process; far beyond any real policy's issuers.
MAX_SOURCES = 256

Fetcher = Callable[[JwksSource], KeySet]


class _HttpsOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """A key set is trusted for where it comes from: a redirect must stay on https."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        if not newurl.startswith("https://"):
            raise JwksError("redirected away from https")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch_jwks(source: JwksSource) -> KeySet:
    """Read ``source`` (blocking: call it from a worker thread). Raises JwksError or OSError."""
    if source.file is not None:
        with open(source.file, "rb") as fh:
            data = fh.read(MAX_JWKS_BYTES + 1)
    else:
        assert source.uri is not None
        context = ssl.create_default_context(cafile=source.ca_file)
        opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=context), _HttpsOnlyRedirects()
        )
        request = urllib.request.Request(source.uri, headers={"accept": "application/json"})
        with opener.open(request, timeout=source.timeout_seconds) as response:
            data = response.read(MAX_JWKS_BYTES + 1)
    if len(data) > MAX_JWKS_BYTES:
        raise JwksError(f"larger than {MAX_JWKS_BYTES} bytes")
    return parse_jwks(data)


@dataclass
class _Good:
    keys: KeySet
    fetched_at: float


class JwksCache:
    """Signing keys per source, shared by every exchange of one process (see module doc)."""

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_TTL_SECONDS,
        max_stale: float = DEFAULT_MAX_STALE_SECONDS,
        refresh_interval: float = DEFAULT_REFRESH_INTERVAL_SECONDS,
        fetch: Fetcher = fetch_jwks,
        timer: Callable[[], float] = time.monotonic,
        on_fetch: Callable[[str, str], None] | None = None,
    ) -> None:
        self._ttl, self._max_stale, self._interval = ttl, max_stale, refresh_interval
        self._fetch = fetch
        self._timer = timer
        self._on_fetch = on_fetch
        self._fresh: TTLCache[JwksSource, KeySet] = TTLCache(MAX_SOURCES, ttl, timer=timer)
        self._good: dict[JwksSource, _Good] = {}
        self._last_forced: dict[JwksSource, float] = {}
        self._last_failure: dict[JwksSource, float] = {}
        self._inflight: dict[JwksSource, asyncio.Task[None]] = {}
        # The load-time keys of each file source last adopted: a policy reload that read
        # the file again brings its keys in at once, instead of after the TTL.
        self._seeded: dict[JwksSource, KeySet] = {}

    def configure(self, *, ttl: float, max_stale: float) -> None:
        """Adopt a reloaded policy's timings; the keys already held stay."""
        if ttl != self._ttl:
            kept = dict(self._fresh.items())
            self._fresh = TTLCache(MAX_SOURCES, ttl, timer=self._timer)
            self._fresh.update(kept)
            self._ttl = ttl
        self._max_stale = max_stale

    # --- the sans-I/O side: what a verification may use now ------------------

    def keys_for(self, source: JwksSource) -> KeySet | None:
        initial = source.initial
        if initial is not None and self._seeded.get(source) is not initial:
            # A file's keys as a policy load read them: good from this moment.
            self._seeded[source] = initial
            self._store(source, initial)
            return initial
        fresh = self._fresh.get(source)
        if fresh is not None:
            return fresh
        good = self._good.get(source)
        if good is not None and self._timer() - good.fetched_at <= self._max_stale:
            return good.keys
        return None

    def wants_fetch(self, source: JwksSource, kid: str | None) -> bool:
        """Whether a token with ``kid`` should wait for a fetch of ``source`` first."""
        now = self._timer()
        failed = self._last_failure.get(source)
        if failed is not None and now - failed < self._interval:
            return False
        keys = self.keys_for(source)
        if source not in self._fresh:
            return True  # never fetched, or the TTL ran out
        if keys is not None and kid is not None and keys.get(kid) is None:
            forced = self._last_forced.get(source)
            return forced is None or now - forced >= self._interval
        return False

    # --- the I/O side: run by the servicer before the exchange sees the headers --

    async def ensure(self, source: JwksSource, kid: str | None) -> None:
        """Fetch ``source`` if ``kid`` calls for it (see the module rules); never raises."""
        running = self._inflight.get(source)
        if running is not None:
            await asyncio.shield(running)
            return
        if not self.wants_fetch(source, kid):
            return
        if source in self._fresh:
            self._last_forced[source] = self._timer()  # an unknown kid forced this one
        task = asyncio.ensure_future(self._refresh(source))
        self._inflight[source] = task
        try:
            await asyncio.shield(task)
        finally:
            if task.done():
                self._inflight.pop(source, None)

    async def _refresh(self, source: JwksSource) -> None:
        try:
            keys = await asyncio.wait_for(
                asyncio.to_thread(self._fetch, source), timeout=source.timeout_seconds + 1
            )
        except (OSError, JwksError, TimeoutError, ValueError) as exc:
            self._last_failure[source] = self._timer()
            self._report(source, "error")
            # The reason names the failure class, never the document.
            log.warning("JWKS fetch from %s failed: %s", source.location, type(exc).__name__)
        else:
            self._last_failure.pop(source, None)
            self._store(source, keys)
            self._report(source, "ok")
        finally:
            self._inflight.pop(source, None)

    def _store(self, source: JwksSource, keys: KeySet) -> None:
        self._fresh[source] = keys
        self._good[source] = _Good(keys, self._timer())
        if len(self._good) > MAX_SOURCES:
            # Sources of policies long replaced: forget the oldest.
            oldest = min(self._good, key=lambda s: self._good[s].fetched_at)
            del self._good[oldest]
            self._seeded.pop(oldest, None)

    def _report(self, source: JwksSource, result: str) -> None:
        if self._on_fetch is not None:
            self._on_fetch(source.location, result)


async def prefetch(
    cache: JwksCache,
    tokens: Sequence[tuple[str | None, Sequence[TrustedIssuer]]],
) -> None:
    """Before an exchange judges its headers: fetch what its presented tokens will need.

    ``tokens`` pairs each presented token (or None) with the issuers it is checked
    against. Bad tokens are skipped here; verification names their fault.
    """
    for token, issuers in tokens:
        if token is None:
            continue
        header = peek(token)
        if not isinstance(header, TokenHeader):
            continue
        trusted = issuer_for(header, issuers)
        if trusted is not None and header.alg in trusted.algorithms:
            await cache.ensure(trusted.jwks, header.kid)

