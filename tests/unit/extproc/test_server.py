"""`weir serve` in-process, spoken to over real gRPC and HTTP (no Envoy)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from extproc.server import ServeConfig, WeirServer
from protos import wire

POLICY = """
trustDomain: cluster.local
workloads:
  - name: checkout
    match: ["spiffe://cluster.local/ns/payments/sa/checkout"]
"""


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[WeirServer]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    running = WeirServer(ServeConfig(str(policy), "127.0.0.1:0", "127.0.0.1:0"))
    await running.start()
    yield running
    await running.close()


def headers_message(peer: str) -> wire.ProcessingRequest:
    request = wire.ProcessingRequest()
    for key, value in ((":method", "POST"), (":path", "/v1/chat/completions")):
        header = request.request_headers.headers.headers.add()
        header.key, header.raw_value = key, value.encode()
    request.attributes[wire.EXT_PROC_ATTRIBUTE_NAMESPACE].update(
        {"connection.uri_san_peer_certificate": peer}
    )
    return request


def body_message(body: bytes, end: bool) -> wire.ProcessingRequest:
    request = wire.ProcessingRequest()
    request.request_body.body, request.request_body.end_of_stream = body, end
    return request


async def exchange(server: WeirServer, messages: list[wire.ProcessingRequest]) -> list:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = wire.ExternalProcessorStub(channel)
        return [r async for r in stub.Process(iter(messages))]


async def test_an_allowed_exchange_answers_headers_and_body_over_grpc(server: WeirServer) -> None:
    body = json.dumps({"model": "gpt-4o", "messages": []}).encode()
    responses = await exchange(
        server,
        [headers_message("spiffe://cluster.local/ns/payments/sa/checkout"),
         body_message(body[:10], False), body_message(body[10:], True)],
    )
    assert [r.WhichOneof("response") for r in responses] == ["request_headers", "request_body"]
    streamed = responses[1].request_body.response.body_mutation.streamed_response
    assert streamed.body == body and streamed.end_of_stream


async def test_an_unknown_identity_gets_an_immediate_403(server: WeirServer) -> None:
    [response] = await exchange(server, [headers_message("spiffe://cluster.local/ns/x/sa/y")])
    assert response.immediate_response.status.code == 403


async def test_a_protocol_violation_fails_the_stream_and_the_server_keeps_serving(
    server: WeirServer,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await exchange(server, [body_message(b"{}", True)])
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    [response] = await exchange(server, [headers_message("spiffe://cluster.local/ns/x/sa/y")])
    assert response.immediate_response.status.code == 403
    metrics = server.metrics.render().decode()
    assert 'weir_stream_errors_total{kind="protocol"} 1.0' in metrics


async def test_grpc_health_reports_serving(server: WeirServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "envoy.service.ext_proc.v3.ExternalProcessor"):
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_readiness_turns_off_when_draining(server: WeirServer) -> None:
    url = f"http://127.0.0.1:{server.admin_port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/readyz") as response:
            assert response.status == 200
        await server.drain()
        async with http.get(f"{url}/readyz") as response:
            assert response.status == 503
        async with http.get(f"{url}/healthz") as response:
            assert response.status == 200


async def test_readiness_is_503_before_the_policy_is_loaded(tmp_path: Path) -> None:
    server = WeirServer(ServeConfig(str(tmp_path / "policy.yaml"), "127.0.0.1:0", "127.0.0.1:0"))
    assert not server.ready


def response_headers_message(content_type: str) -> wire.ProcessingRequest:
    request = wire.ProcessingRequest()
    for key, value in ((":status", "200"), ("content-type", content_type)):
        header = request.response_headers.headers.headers.add()
        header.key, header.raw_value = key, value.encode()
    return request


def response_body_message(body: bytes, end: bool) -> wire.ProcessingRequest:
    request = wire.ProcessingRequest()
    request.response_body.body, request.response_body.end_of_stream = body, end
    return request


async def test_the_record_is_published_before_envoy_closes_the_stream(server: WeirServer) -> None:
    # Envoy closes the gRPC stream some time after the client already has its last byte;
    # metrics read in between must already count the call.
    request = json.dumps({"model": "gpt-4o", "messages": []}).encode()
    answer = json.dumps({
        "id": "c1", "object": "chat.completion", "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7},
    }).encode()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        call = wire.ExternalProcessorStub(channel).Process()
        await call.write(headers_message("spiffe://cluster.local/ns/payments/sa/checkout"))
        await call.write(body_message(request, True))
        for _ in range(2):
            await call.read()
        await call.write(response_headers_message("application/json"))
        await call.write(response_body_message(answer, True))
        last = None
        while last is None or last.WhichOneof("response") != "response_body":
            last = await call.read()
        assert last.response_body.response.body_mutation.streamed_response.end_of_stream
        metrics = server.metrics.render().decode()
        await call.done_writing()
        assert await call.read() == grpc.aio.EOF
    assert ('weir_tokens_total{direction="out",model="gpt-4o",'
            'provider="openai.chat_completions",workload="checkout"} 3.0') in metrics
    assert "decision=\"allow\"" in metrics and 'weir_stream_errors_total{' not in metrics


CHAT_STREAM = b"".join(
    b"data: " + json.dumps(event).encode() + b"\n\n"
    for event in (
        {"id": "c", "object": "chat.completion.chunk",
         "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]},
        {"id": "c", "object": "chat.completion.chunk", "choices": [],
         "usage": {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}},
    )
) + b"data: [DONE]\n\n"


@pytest.mark.parametrize("guarded", [False, True], ids=["unscanned", "guarded"])
async def test_the_record_is_published_when_the_terminal_event_goes_out(
    tmp_path: Path, guarded: bool
) -> None:
    # The openai SDK stops at [DONE] and hangs up; Envoy's end of stream may then never
    # reach Weir. The call must be counted from the [DONE] on, with its usage.
    rules = "    response: [{scanner: secrets, action: redact}]\n" if guarded else ""
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY + rules)
    running = WeirServer(ServeConfig(str(policy), "127.0.0.1:0", "127.0.0.1:0"))
    await running.start()
    try:
        request = json.dumps({"model": "gpt-4o", "stream": True, "messages": []}).encode()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.grpc_port}") as channel:
            call = wire.ExternalProcessorStub(channel).Process()
            await call.write(headers_message("spiffe://cluster.local/ns/payments/sa/checkout"))
            await call.write(body_message(request, True))
            for _ in range(2):
                await call.read()
            await call.write(response_headers_message("text/event-stream"))
            await call.read()
            await call.write(response_body_message(CHAT_STREAM, False))  # no end of stream
            released = await call.read()
            assert released.response_body.response.body_mutation.streamed_response.body.endswith(
                b"data: [DONE]\n\n")
            metrics = running.metrics.render().decode()
            call.cancel()  # the client hung up: Envoy resets the ext_proc stream
    finally:
        await running.close()
    assert ('weir_tokens_total{direction="out",model="gpt-4o",'
            'provider="openai.chat_completions",workload="checkout"} 3.0') in metrics
    assert 'decision="allow"' in metrics


async def test_a_crash_after_the_request_was_allowed_is_recorded_as_an_error(
    server: WeirServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from extproc.stream import Exchange

    def crash(self: Exchange, event: object) -> list:
        raise RuntimeError("a bug in the response pipeline")

    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        call = wire.ExternalProcessorStub(channel).Process()
        await call.write(headers_message("spiffe://cluster.local/ns/payments/sa/checkout"))
        await call.write(body_message(json.dumps({"model": "gpt-4o", "messages": []}).encode(),
                                      True))
        for _ in range(2):
            await call.read()
        monkeypatch.setattr(Exchange, "_response_headers_event", crash)
        await call.write(response_headers_message("text/event-stream"))
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call.read()
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    metrics = server.metrics.render().decode()
    assert 'decision="error"' in metrics and 'decision="allow"' not in metrics
