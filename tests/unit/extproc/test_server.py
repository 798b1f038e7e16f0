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
