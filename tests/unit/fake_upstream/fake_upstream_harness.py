"""Shared helpers for the fake upstream tests: a threaded server and raw HTTP calls."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtest.fake_upstream import FakeUpstream, start_fake_upstream


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    method: str,
    url: str,
    *,
    json_body: Any = None,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """A raw HTTP call (stdlib, which neither decodes gzip nor parses SSE), for what
    the SDKs hide: event names, exact bytes, 404s, bad JSON."""
    data = json.dumps(json_body).encode() if json_body is not None else content
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("content-type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            got = {k.lower(): v for k, v in response.headers.items()}
            return Reply(response.status, got["content-type"], response.read(), got)
    except urllib.error.HTTPError as error:
        got = {k.lower(): v for k, v in error.headers.items()}
        return Reply(error.code, got["content-type"], error.read(), got)


class ThreadedUpstream:
    """The server on its own event loop thread, so the sync SDK clients can call it."""

    def __init__(self, log_path: Path | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: FakeUpstream = self.run(start_fake_upstream("127.0.0.1", 0, log_path))

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def close(self) -> None:
        self.run(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


def user(text: str) -> Any:
    # Any: the SDKs type messages as TypedDicts; plain dicts are what users send.
    return [{"role": "user", "content": text}]
