"""The controller's probes: ready after a first reconcile, alive while reconciles keep coming."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from extproc.cli import build_parser
from mesh.controller import stale_after
from mesh.controller_health import Heartbeat, serve_health


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ready_only_after_a_reconcile_and_alive_only_while_they_keep_coming() -> None:
    clock = Clock()
    heartbeat = Heartbeat(stale_after=90, clock=clock)
    assert heartbeat.alive and not heartbeat.ready  # starting up
    clock.now += 89
    assert heartbeat.alive
    clock.now += 2
    assert not heartbeat.alive  # never reconciled within the bound: stuck at start
    heartbeat.beat()
    assert heartbeat.alive and heartbeat.ready
    clock.now += 91
    assert not heartbeat.alive and heartbeat.ready  # a loop stalled on a hung API call


def test_liveness_allows_three_resyncs() -> None:
    assert stale_after(60) == 210.0


def status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_probe_endpoints_over_http() -> None:
    clock = Clock()
    heartbeat = Heartbeat(stale_after=10, clock=clock)
    server = serve_health("127.0.0.1:0", heartbeat)
    try:
        port = server.server_address[1]
        assert (status(port, "/healthz"), status(port, "/readyz")) == (200, 503)
        heartbeat.beat()
        assert (status(port, "/healthz"), status(port, "/readyz")) == (200, 200)
        clock.now += 11
        assert status(port, "/healthz") == 503
        assert status(port, "/metrics") == 404
    finally:
        server.shutdown()
        server.server_close()


def test_health_listen_is_a_flag_with_a_default() -> None:
    args = build_parser().parse_args(["controller", "--templates", "/t"])
    assert args.health_listen == "0.0.0.0:8081"
    with pytest.raises(ValueError, match="HOST:PORT"):
        serve_health("nonsense", Heartbeat(1))
