"""The sniffing benchmark measures what it says: each body sniffed, and the reference
the very same bytes unsniffed."""

from __future__ import annotations

from extproc.events import BodyEvent, Direction, HeadersEvent
from extproc.stream import Exchange
from loadtest.bench_sniff import PEER, POLICY, UNSNIFFED, bodies, run_once
from mesh.policy import parse_policy


def test_every_bench_body_is_ordinary_traffic_that_passes() -> None:
    policy = parse_policy(POLICY)
    for body in bodies().values():
        run_once(policy, body, ("content-type", "application/json"))
        run_once(policy, body, UNSNIFFED)


def test_the_reference_is_not_sniffed_and_the_measured_case_is() -> None:
    policy = parse_policy(POLICY)
    body = next(iter(bodies().values()))
    for content_type, sniffed in ((UNSNIFFED, False), (("content-type", "application/json"), True)):
        exchange = Exchange(policy)
        headers = ((":method", "POST"), (":path", "/api/orders"), content_type)
        held = exchange.receive(HeadersEvent(
            Direction.REQUEST, headers, False, {"connection.uri_san_peer_certificate": PEER}
        )) == []
        assert held is sniffed
        exchange.receive(BodyEvent(Direction.REQUEST, body, True))
        assert ("not sniffed" in exchange.record.reason) is not sniffed
