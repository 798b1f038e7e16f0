"""Locust load test for Weir: SSE chat-completion streams through the mTLS Envoy listener.

Each task POSTs one streaming ``/v1/chat/completions`` request, presenting the
workload's client certificate, and marks the request failed unless the answer
is a 200 event stream ending with its terminator (``data: [DONE]``) and
carrying no in-band error event. Locust counts the failures (``Failures`` in
its statistics, ``Failure Count`` in the CSV).

Environment:
    WEIR_BENCH_CERT, WEIR_BENCH_KEY  PEM client certificate and key (required)
    WEIR_BENCH_CA                    CA to verify Envoy with (optional; unverified without)
    WEIR_BENCH_EVENTS                content events per stream, default 100
    WEIR_BENCH_EVENT_BYTES           bytes per event, default: word pieces
    WEIR_BENCH_MODEL                 default gpt-4o-mini

Run headless and bounded, against loopback only::

    locust -f loadtest/locustfile.py --headless -u 32 -r 32 -t 20s \\
        --host https://127.0.0.1:10000 --csv reports/locust
"""

from __future__ import annotations

import json
import os
import ssl
from typing import Any
from urllib.parse import urlsplit

from locust import FastHttpUser, events, task

TERMINATOR = b"data: [DONE]"
LOOPBACK = ("127.", "localhost", "::1")


def stream_problem(status: int, body: bytes) -> str | None:
    """Why a streamed answer is not a complete, clean SSE stream; None when it is."""
    if status != 200:
        return f"status {status}"
    if not body.rstrip().endswith(TERMINATOR):
        return "stream does not end with data: [DONE]"
    if b'"error"' in body:
        return "in-band error event"
    return None


def client_ssl_context(**_: Any) -> ssl.SSLContext:
    """The TLS context geventhttpclient asks for: our workload certificate, the sandbox CA."""
    ca = os.environ.get("WEIR_BENCH_CA")
    if ca:
        context = ssl.create_default_context(cafile=ca)
    else:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(os.environ["WEIR_BENCH_CERT"], os.environ["WEIR_BENCH_KEY"])
    return context


@events.test_start.add_listener
def _loopback_only(environment: Any, **_: Any) -> None:
    host = urlsplit(environment.host or "").hostname or ""
    if not host.startswith(LOOPBACK):
        raise SystemExit(f"loopback targets only, got {host!r}")


class StreamUser(FastHttpUser):
    # Envoy's certificate is for the sandbox server identity, not for 127.0.0.1.
    insecure = True
    ssl_context_factory = staticmethod(client_ssl_context)
    network_timeout = 30.0
    connection_timeout = 5.0
    max_retries = 0

    def on_start(self) -> None:
        self.body = json.dumps(
            {
                "model": os.environ.get("WEIR_BENCH_MODEL", "gpt-4o-mini"),
                "stream": True,
                "messages": [{"role": "user", "content": "Say hello to the load test."}],
            }
        )
        self.headers = {
            "content-type": "application/json",
            "x-fake-events": os.environ.get("WEIR_BENCH_EVENTS", "100"),
        }
        event_bytes = os.environ.get("WEIR_BENCH_EVENT_BYTES")
        if event_bytes:
            self.headers["x-fake-event-bytes"] = event_bytes

    @task
    def stream(self) -> None:
        with self.client.post(
            "/v1/chat/completions",
            data=self.body,
            headers=self.headers,
            catch_response=True,
            name="stream",
        ) as response:
            problem = stream_problem(response.status_code, response.content or b"")
            if problem is None:
                response.success()
            else:
                response.failure(problem)
