"""Ending open exchanges when the drain grace is over: `SseGuard.terminate`,
`Exchange.terminate`, and the servicer's drain deadline over real gRPC (no Envoy)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from extproc.events import BodyEvent, Direction, HeadersEvent, Respond, StreamBody
from extproc.llm import PROVIDERS
from extproc.scan_plan import plan_for
from extproc.server import ServeConfig, WeirServer
from extproc.sse_guard import SseGuard
from extproc.stream import Exchange
from mesh.policy import ScanRule, parse_policy
from protos import wire

REQ, RESP = Direction.REQUEST, Direction.RESPONSE
CHAT = next(p for p in PROVIDERS if p.name == "openai.chat_completions")
CHECKOUT = "spiffe://cluster.local/ns/payments/sa/checkout"
POLICY = """
trustDomain: cluster.local
workloads:
  - name: checkout
    match: ["spiffe://cluster.local/ns/payments/sa/checkout"]
    response: [{scanner: secrets, action: block}]
"""


def chunk(text: str) -> bytes:
    event = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
             "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    return b"data: " + json.dumps(event).encode() + b"\n\n"


def data_lines(raw: bytes) -> list[str]:
    return [line[6:] for line in raw.decode().splitlines() if line.startswith("data: ")]


def test_terminate_ends_a_guarded_stream_with_the_error_event_and_releases_nothing_held() -> None:
    rules = (ScanRule("secrets", "block"),)
    plan = plan_for(rules, enforcing=True)
    assert plan is not None
    guard = SseGuard(CHAT, plan)
    out = guard.feed(chunk("hello ") + chunk("AKIAQ3EG"))  # could be the start of a key
    assert "AKIA" not in out.decode()
    ending = guard.terminate("shutting down")
    [error, done] = data_lines(ending)
    assert json.loads(error)["error"]["code"] == "weir_stream_error"
    assert "shutting down" in json.loads(error)["error"]["message"]
    assert done == "[DONE]"
    assert "AKIA" not in ending.decode()
    assert guard.feed(chunk("UKZW5XYT7M2P")) == b""
    assert guard.terminate("again") == b""
    assert guard.finish() == b""


def exchange_with_open_stream(
    policy: str = POLICY, response_headers: tuple[tuple[str, str], ...] = (),
) -> Exchange:
    exchange = Exchange(parse_policy(policy, "p.yaml"))
    body = json.dumps({"model": "gpt-4o", "stream": True, "messages": []}).encode()
    exchange.receive(HeadersEvent(REQ, ((":method", "POST"), (":path", "/v1/chat/completions")),
                                  False, {"connection.uri_san_peer_certificate": CHECKOUT}))
    exchange.receive(BodyEvent(REQ, body, True))
    exchange.receive(HeadersEvent(RESP, ((":status", "200"),
                                         ("content-type", "text/event-stream"),
                                         *response_headers), False))
    return exchange


NO_RESPONSE_RULES = POLICY.replace("    response: [{scanner: secrets, action: block}]\n", "")


@pytest.mark.parametrize("in_flight", [b"", b'data: {"id": "c", "choi'])
def test_an_unscanned_token_stream_also_ends_with_the_error_event(in_flight: bytes) -> None:
    assert "response" not in NO_RESPONSE_RULES
    exchange = exchange_with_open_stream(NO_RESPONSE_RULES)
    [passed] = exchange.receive(BodyEvent(RESP, chunk("plain ") + in_flight, False))
    assert isinstance(passed, StreamBody) and passed.chunk == chunk("plain ") + in_flight
    [action] = exchange.terminate("weir is shutting down")
    assert isinstance(action, StreamBody) and action.end_of_stream
    # Half an event already went out: a blank line closes it before the error event.
    assert action.chunk.startswith(b"\n\n") == bool(in_flight)
    lines = data_lines(action.chunk)
    assert lines[-1] == "[DONE]"
    assert json.loads(lines[-2])["error"]["code"] == "weir_stream_error"
    assert exchange.record.verdict == "error"
    assert exchange.receive(BodyEvent(RESP, chunk("more"), True)) == []


def test_a_compressed_unscanned_stream_has_no_in_band_ending() -> None:
    exchange = exchange_with_open_stream(NO_RESPONSE_RULES, (("content-encoding", "gzip"),))
    exchange.receive(BodyEvent(RESP, b"\x1f\x8b\x08", False))
    assert exchange.terminate("drain") == []


def test_exchange_terminate_ends_the_response_and_swallows_what_follows() -> None:
    exchange = exchange_with_open_stream()
    assert exchange.receive(BodyEvent(RESP, chunk("partial "), False))
    [action] = exchange.terminate("drain")
    assert isinstance(action, StreamBody) and action.end_of_stream
    assert data_lines(action.chunk)[-1] == "[DONE]"
    assert exchange.record.verdict == "error"
    assert exchange.receive(BodyEvent(RESP, chunk("more"), False)) == []
    assert exchange.receive(BodyEvent(RESP, b"", True)) == []


def test_exchange_terminate_refuses_a_request_still_being_judged_with_a_503() -> None:
    exchange = Exchange(parse_policy(POLICY, "p.yaml"))
    exchange.receive(HeadersEvent(REQ, ((":method", "POST"), (":path", "/v1/messages")),
                                  False, {"connection.uri_san_peer_certificate": CHECKOUT}))
    [respond] = exchange.terminate("drain")
    assert isinstance(respond, Respond) and respond.status == 503
    assert json.loads(respond.body)["type"] == "error"  # Anthropic's format
    assert exchange.closed


def test_exchange_terminate_has_no_in_band_ending_while_awaiting_the_upstream() -> None:
    exchange = Exchange(parse_policy(POLICY, "p.yaml"))
    body = json.dumps({"model": "gpt-4o", "messages": []}).encode()
    exchange.receive(HeadersEvent(REQ, ((":method", "POST"), (":path", "/v1/chat/completions")),
                                  False, {"connection.uri_san_peer_certificate": CHECKOUT}))
    exchange.receive(BodyEvent(REQ, body, True))
    assert exchange.terminate("drain") == []


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[WeirServer]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    running = WeirServer(ServeConfig(str(policy), "127.0.0.1:0", "127.0.0.1:0",
                                     drain_grace=0.5))
    await running.start()
    yield running
    await running.close()


async def test_a_stream_open_past_the_drain_grace_gets_its_ending_then_drain_returns(
    server: WeirServer,
) -> None:
    messages: asyncio.Queue[wire.ProcessingRequest | None] = asyncio.Queue()
    first = wire.ProcessingRequest()
    for key, value in ((":method", "POST"), (":path", "/v1/chat/completions")):
        header = first.request_headers.headers.headers.add()
        header.key, header.raw_value = key, value.encode()
    first.attributes[wire.EXT_PROC_ATTRIBUTE_NAMESPACE].update(
        {"connection.uri_san_peer_certificate": CHECKOUT})
    await messages.put(first)  # then nothing more: the body never comes

    async def requests() -> AsyncIterator[wire.ProcessingRequest]:
        while (message := await messages.get()) is not None:
            yield message

    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        call = wire.ExternalProcessorStub(channel).Process(requests())
        await asyncio.sleep(0.2)  # the stream is open and waiting
        loop = asyncio.get_running_loop()
        started = loop.time()
        drained = asyncio.create_task(server.drain())
        response = await asyncio.wait_for(call.read(), 5)
        assert response.immediate_response.status.code == 503
        assert b"shutting down" in response.immediate_response.body
        await asyncio.wait_for(drained, 5)
        assert 0.4 <= loop.time() - started < 2.0
        await messages.put(None)
    metrics = server.metrics.render().decode()
    assert 'weir_stream_errors_total{kind="drain_deadline"} 1.0' in metrics
