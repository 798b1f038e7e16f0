"""The request-headers step with tokens: end users, JWT-SVIDs and the destination allow-lists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from extproc.audit import subject_hash
from extproc.events import BodyEvent, ContinueHeaders, Direction, HeadersEvent, Respond, StreamBody
from extproc.stream import Exchange
from mesh.policy import Policy, load_policy
from mesh.sandbox_idp import SandboxIdp, unsigned_token

REQ = Direction.REQUEST
ISSUER = "https://idp.example.com"
ASSISTANT = "spiffe://cluster.local/ns/finance/sa/assistant"
BATCH = "spiffe://cluster.local/ns/batch/sa/etl"


@pytest.fixture(scope="module")
def idp() -> SandboxIdp:
    return SandboxIdp.create(ISSUER)


@pytest.fixture(scope="module")
def svid_idp() -> SandboxIdp:
    return SandboxIdp.create("https://spire.cluster.local", kid="svid-1", alg="ES256")


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory, idp: SandboxIdp, svid_idp: SandboxIdp
           ) -> Policy:
    root = tmp_path_factory.mktemp("policy")
    (root / "users.json").write_bytes(idp.jwks())
    (root / "svid.json").write_bytes(svid_idp.jwks())
    (root / "policy.yaml").write_text(f"""\
trustDomain: cluster.local
identitySources: [peer-certificate, jwt-svid]
jwt:
  issuers: [{{issuer: "{ISSUER}", audiences: [weir], jwks: {{file: users.json}}}}]
  header: x-user-token
jwtSvid: {{audiences: [weir], jwks: {{file: svid.json}}, algorithms: [ES256]}}
workloads:
  - name: finance-assistant
    match: ["{ASSISTANT}"]
    users: ["group:finance-analysts", "sub:*@corp.example"]
    requireUser: true
    providers: [openai]
    upstreams: ["api.openai.com", "*.openai.azure.com"]
  - name: batch
    match: ["{BATCH}"]
""")
    return load_policy(root / "policy.yaml")


def headers(peer: str | None, *extra: tuple[str, str], authority: str = "api.openai.com",
            path: str = "/v1/chat/completions") -> HeadersEvent:
    attributes = {"connection.uri_san_peer_certificate": peer} if peer else {}
    base = ((":method", "POST"), (":path", path), (":authority", authority))
    return HeadersEvent(REQ, (*base, *extra), False, attributes)


def user(idp: SandboxIdp, subject: str = "bob@elsewhere", **claims: object) -> tuple[str, str]:
    return ("x-user-token", idp.token(idp.claims(subject, "weir", **claims)))


def refusal(actions: list) -> Respond:
    assert len(actions) == 1 and isinstance(actions[0], Respond), actions
    return actions[0]


def test_a_user_in_the_right_group_passes_and_is_recorded_as_a_hash(
    policy: Policy, idp: SandboxIdp
) -> None:
    exchange = Exchange(policy)
    assert exchange.receive(headers(ASSISTANT, user(idp, groups=["finance-analysts"]))) == []
    assert exchange.record.user == subject_hash(ISSUER, "bob@elsewhere")
    assert "bob" not in json.dumps(exchange.record.__repr__())


def test_a_subject_glob_admits_a_user_outside_the_groups(policy: Policy, idp: SandboxIdp) -> None:
    assert Exchange(policy).receive(headers(ASSISTANT, user(idp, "carol@corp.example"))) == []


def test_a_user_in_the_wrong_group_gets_a_403_naming_the_rule(
    policy: Policy, idp: SandboxIdp
) -> None:
    exchange = Exchange(policy)
    reply = refusal(exchange.receive(headers(ASSISTANT, user(idp, groups=["sales"]))))
    assert reply.status == 403
    message = json.loads(reply.body)["error"]["message"]
    assert "finance-assistant" in message and "group:finance-analysts" in message
    assert "sales" not in message and "bob" not in message
    assert exchange.record.token_rejection == "user:not_admitted"


def test_require_user_without_a_token_gets_a_401(policy: Policy) -> None:
    reply = refusal(Exchange(policy).receive(headers(ASSISTANT)))
    assert reply.status == 401
    assert ("www-authenticate", 'Bearer realm="weir"') in reply.headers
    assert "requires an end-user token" in json.loads(reply.body)["error"]["message"]


def test_an_invalid_token_is_a_401_even_where_no_user_is_required(
    policy: Policy, idp: SandboxIdp
) -> None:
    token = unsigned_token(idp.claims("mallory", "weir"))
    exchange = Exchange(policy)
    reply = refusal(exchange.receive(headers(BATCH, ("x-user-token", token))))
    body = reply.body.decode()
    assert reply.status == 401 and "algorithm 'none' is not allowed" in body
    assert token not in body and token.split(".")[1] not in body
    assert exchange.record.token_rejection == "user:algorithm"


@pytest.mark.parametrize("body", [b"ping", b'{"status": "ok"}'])
def test_the_user_token_header_is_not_forwarded_upstream(
    policy: Policy, idp: SandboxIdp, body: bytes
) -> None:
    exchange = Exchange(policy)
    # The headers wait for the body: it decides whether this is an LLM call.
    event = headers(BATCH, user(idp), path="/healthz", authority="status.internal")
    assert exchange.receive(event) == []
    actions = exchange.receive(BodyEvent(REQ, body, True))
    assert actions == [
        ContinueHeaders(REQ, remove_headers=("x-jwt-svid", "x-user-token")),
        StreamBody(REQ, body, True),
    ]


def test_a_forbidden_upstream_authority_gets_a_403_naming_the_rule(
    policy: Policy, idp: SandboxIdp
) -> None:
    event = headers(ASSISTANT, user(idp, groups=["finance-analysts"]), authority="evil.example")
    reply = refusal(Exchange(policy).receive(event))
    message = json.loads(reply.body)["error"]["message"]
    assert reply.status == 403 and "upstream 'evil.example'" in message and "upstreams" in message


def test_an_azure_deployment_matches_the_upstream_glob(policy: Policy, idp: SandboxIdp) -> None:
    event = headers(ASSISTANT, user(idp, groups=["finance-analysts"]),
                    authority="corp.openai.azure.com:443")
    assert Exchange(policy).receive(event) == []


def test_a_provider_outside_the_list_gets_a_403(policy: Policy, idp: SandboxIdp) -> None:
    event = headers(ASSISTANT, user(idp, groups=["finance-analysts"]), path="/v1/messages")
    reply = refusal(Exchange(policy).receive(event))
    assert reply.status == 403
    assert "provider 'anthropic' is not in workload 'finance-assistant' providers" in (
        json.loads(reply.body)["error"]["message"]
    )


def test_a_jwt_svid_identifies_a_caller_without_a_certificate(
    policy: Policy, svid_idp: SandboxIdp
) -> None:
    svid = svid_idp.token(svid_idp.claims(BATCH, "weir"))
    exchange = Exchange(policy)
    assert exchange.receive(headers(None, ("x-jwt-svid", svid))) == []
    assert exchange.record.principal == BATCH
    assert exchange.record.identity_source == "jwt-svid"


def test_a_jwt_svid_outside_the_trust_domain_identifies_nobody(
    policy: Policy, svid_idp: SandboxIdp
) -> None:
    svid = svid_idp.token(svid_idp.claims("spiffe://evil.example/ns/batch/sa/etl", "weir"))
    exchange = Exchange(policy)
    assert refusal(exchange.receive(headers(None, ("x-jwt-svid", svid)))).status == 403
    assert exchange.record.principal == "unauthenticated"


def test_a_forged_jwt_svid_is_a_401(policy: Policy, idp: SandboxIdp) -> None:
    forged = idp.token(idp.claims(BATCH, "weir"))  # the user IdP's key, not the trust domain's
    exchange = Exchange(policy)
    assert refusal(exchange.receive(headers(None, ("x-jwt-svid", forged)))).status == 401
    assert exchange.record.token_rejection is not None
    assert exchange.record.token_rejection.startswith("svid:")


def test_a_peer_certificate_first_in_the_sources_wins_over_a_bad_svid(
    policy: Policy, idp: SandboxIdp
) -> None:
    forged = idp.token(idp.claims(ASSISTANT, "weir"))
    exchange = Exchange(policy)
    assert exchange.receive(headers(BATCH, ("x-jwt-svid", forged))) == []
    assert exchange.record.principal == BATCH


def test_audit_mode_records_a_token_refusal_and_lets_the_call_through(
    tmp_path: Path, policy: Policy
) -> None:
    from dataclasses import replace

    audit = replace(policy, mode="audit")
    exchange = Exchange(audit)
    assert exchange.receive(headers(ASSISTANT)) == []
    assert exchange.record.verdict == "audit"
    assert exchange.record.token_rejection == "user:missing"


def test_audit_mode_keeps_a_token_refusal_recorded_on_non_llm_traffic(policy: Policy) -> None:
    from dataclasses import replace

    exchange = Exchange(replace(policy, mode="audit"))
    event = headers(ASSISTANT, path="/healthz", authority="status.internal")
    assert exchange.receive(event) == []
    assert exchange.receive(BodyEvent(REQ, b"ping", True)) == [
        ContinueHeaders(REQ, remove_headers=("x-jwt-svid", "x-user-token")),
        StreamBody(REQ, b"ping", True),
    ]
    assert exchange.record.verdict == "audit"


def test_an_llm_call_recognised_by_its_body_obeys_the_upstream_allow_list(
    policy: Policy, idp: SandboxIdp
) -> None:
    exchange = Exchange(policy)
    event = headers(
        ASSISTANT, user(idp, groups=["finance-analysts"]), authority="evil.example",
        path="/not/an/api",
    )
    assert exchange.receive(event) == []
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    reply = refusal(exchange.receive(BodyEvent(REQ, body.encode(), True)))
    message = json.loads(reply.body)["error"]["message"]
    assert reply.status == 403 and "upstream 'evil.example'" in message
    assert exchange.record.recognised_by == "body"
