"""ext_authz: the pure Check decision, its CheckResponse, and the servicer over real gRPC."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from extproc.authz import AUTHZ_SERVICE, AuthzVerdict, decide_check, encode_check_response
from extproc.server import ServeConfig, WeirServer
from mesh.policy import parse_policy
from protos import wire

POLICY = """
trustDomain: cluster.local
defaultAction: deny
mode: {mode}
workloads:
  - name: checkout
    match: ["spiffe://cluster.local/ns/payments/sa/checkout"]
    models: ["gpt-4o"]
  - name: research
    match: ["spiffe://cluster.local/ns/research/*"]
  - name: anonymous-probe
    match: ["unauthenticated"]
"""
ENFORCE = parse_policy(POLICY.format(mode="enforce"))
AUDIT = parse_policy(POLICY.format(mode="audit"))
CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"


@pytest.mark.parametrize(
    ("principal", "path", "verdict", "workload", "principal_seen"),
    [
        ("spiffe://cluster.local/ns/payments/sa/checkout", CHAT, "allow", "checkout", None),
        ("spiffe://cluster.local/ns/research/sa/nb", MESSAGES, "allow", "research", None),
        ("spiffe://cluster.local/ns/batch/sa/etl", CHAT, "deny", None, None),
        # A foreign trust domain is not an identity here: the caller is anonymous.
        ("spiffe://evil.example/ns/payments/sa/checkout", CHAT, "allow", "anonymous-probe",
         "unauthenticated"),
        # Strict parsing: a trailing slash or a port is not a SPIFFE ID.
        ("spiffe://cluster.local/ns/payments/sa/checkout/", CHAT, "allow", "anonymous-probe",
         "unauthenticated"),
        ("", "/healthz", "allow", "anonymous-probe", "unauthenticated"),
    ],
    ids=["exact-rule", "glob-rule", "unknown-identity", "foreign-trust-domain",
         "malformed-id", "no-certificate"],
)
def test_the_check_decision_follows_the_identity_rules_of_the_policy(
    principal: str, path: str, verdict: str, workload: str | None, principal_seen: str | None
) -> None:
    result = decide_check(ENFORCE, principal, path)
    assert (result.verdict, result.workload) == (verdict, workload)
    assert result.allowed is (verdict == "allow")
    assert result.principal == (principal_seen or principal)


def test_without_an_unauthenticated_rule_an_anonymous_caller_is_denied() -> None:
    policy = parse_policy("trustDomain: cluster.local\nworkloads: []\n")
    result = decide_check(policy, "", CHAT)
    assert (result.allowed, result.principal, result.rule) == (
        False, "unauthenticated", "defaultAction"
    )


@pytest.mark.parametrize(
    ("path", "error_type"),
    [
        (CHAT, "permission_error"),
        (MESSAGES, "permission_error"),
        ("/v1/messages?beta=true", "permission_error"),
        ("/something/else", "permission_error"),
    ],
)
def test_a_denial_is_a_403_with_the_provider_error_body_for_the_path(
    path: str, error_type: str
) -> None:
    result = decide_check(ENFORCE, "spiffe://cluster.local/ns/batch/sa/etl", path)
    assert (result.allowed, result.status) == (False, 403)
    error = json.loads(result.body)["error"]
    assert error["type"] == error_type
    assert error["message"].startswith("weir: no workload matches")


def test_the_anthropic_path_gets_the_anthropic_envelope_and_openai_paths_do_not() -> None:
    etl = "spiffe://cluster.local/ns/batch/sa/etl"
    assert json.loads(decide_check(ENFORCE, etl, MESSAGES).body)["type"] == "error"
    assert "type" not in json.loads(decide_check(ENFORCE, etl, CHAT).body)


def test_audit_mode_lets_a_denied_identity_through_and_records_audit() -> None:
    result = decide_check(AUDIT, "spiffe://cluster.local/ns/batch/sa/etl", CHAT)
    assert (result.allowed, result.verdict, result.body) == (True, "audit", b"")


def test_the_model_is_never_judged_because_a_check_has_no_body() -> None:
    # checkout may use only gpt-4o, but a header-only check cannot know the model.
    result = decide_check(ENFORCE, "spiffe://cluster.local/ns/payments/sa/checkout", CHAT)
    assert result.allowed and "model not yet known" in result.reason


def test_an_allowed_verdict_encodes_as_an_ok_check_response() -> None:
    response = encode_check_response(
        AuthzVerdict(True, "allow", "spiffe://cluster.local/ns/a/sa/b", "w", "w", "ok")
    )
    assert response.status.code == 0
    assert response.WhichOneof("http_response") == "ok_response"


def test_a_denied_verdict_encodes_status_body_and_json_content_type() -> None:
    verdict = decide_check(ENFORCE, "spiffe://cluster.local/ns/batch/sa/etl", CHAT)
    response = encode_check_response(verdict)
    assert response.status.code == 7  # google.rpc.Code.PERMISSION_DENIED
    denied = response.denied_response
    assert denied.status.code == 403
    assert denied.body.encode() == verdict.body
    headers = {h.header.key: h.header.value for h in denied.headers}
    assert headers == {"content-type": "application/json", "x-weir-verdict": "deny"}


# --- the servicer on the same port as ext_proc ----------------------------------------


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[WeirServer]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(mode="enforce"))
    running = WeirServer(ServeConfig(str(policy), "127.0.0.1:0", "127.0.0.1:0"))
    await running.start()
    yield running
    await running.close()


def check_request(principal: str, path: str) -> wire.CheckRequest:
    request = wire.CheckRequest()
    request.attributes.source.principal = principal
    request.attributes.request.http.method = "POST"
    request.attributes.request.http.path = path
    return request


async def call_check(server: WeirServer, request: wire.CheckRequest) -> wire.CheckResponse:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        check = channel.unary_unary(
            f"/{AUTHZ_SERVICE}/Check",
            request_serializer=wire.CheckRequest.SerializeToString,
            response_deserializer=wire.CheckResponse.FromString,
        )
        response: wire.CheckResponse = await check(request)
        return response


@pytest.mark.parametrize(
    ("principal", "rpc_code", "http_status"),
    [
        ("spiffe://cluster.local/ns/payments/sa/checkout", 0, None),
        ("spiffe://cluster.local/ns/batch/sa/etl", 7, 403),
    ],
    ids=["allowed", "denied"],
)
async def test_check_answers_over_grpc_on_the_ext_proc_port(
    server: WeirServer, principal: str, rpc_code: int, http_status: int | None
) -> None:
    response = await call_check(server, check_request(principal, CHAT))
    assert response.status.code == rpc_code
    if http_status is not None:
        assert response.denied_response.status.code == http_status
    metrics = server.metrics.render().decode()
    verdict = "allow" if rpc_code == 0 else "deny"
    assert f'weir_authz_checks_total{{verdict="{verdict}"' in metrics


async def test_grpc_health_reports_the_authorization_service_serving(server: WeirServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=AUTHZ_SERVICE))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
