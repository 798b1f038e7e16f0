"""`weir controller`'s liveness and readiness: when did a reconcile last complete?

The controller's work happens in a blocking watch loop, so "the process is up"
says nothing. The loop beats a `Heartbeat` after every reconcile (every namespace
event, and at least every resync, when the watch times out); the probes read it:

- ``/readyz``: 200 once a first reconcile has completed against the API server;
- ``/healthz``: 200 while the last reconcile (or the start) is more recent than
  ``stale_after``; a loop stuck on a hung API call turns it 503, and the kubelet
  restarts the pod.

Plain ``http.server`` in a daemon thread: two tiny endpoints need no framework.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Heartbeat:
    def __init__(self, stale_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._stale_after = stale_after
        self._clock = clock
        self._started = clock()
        self._last: float | None = None
        self._lock = threading.Lock()

    def beat(self) -> None:
        with self._lock:
            self._last = self._clock()

    @property
    def ready(self) -> bool:
        return self._last is not None

    @property
    def alive(self) -> bool:
        with self._lock:
            since = self._started if self._last is None else self._last
        return self._clock() - since < self._stale_after


def serve_health(listen: str, heartbeat: Heartbeat) -> ThreadingHTTPServer:
    """Serve /healthz and /readyz on ``HOST:PORT`` from a daemon thread; returns the server."""
    host, _, port = listen.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {listen!r}")

    class Probes(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            checks = {"/healthz": heartbeat.alive, "/readyz": heartbeat.ready}
            if self.path not in checks:
                self.send_error(404)
                return
            ok = checks[self.path]
            body = b"ok\n" if ok else b"not yet reconciled or stalled\n"
            self.send_response(200 if ok else 503)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # probes every few seconds would drown the controller's own log

    server = ThreadingHTTPServer((host.strip("[]") or "0.0.0.0", int(port)), Probes)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
