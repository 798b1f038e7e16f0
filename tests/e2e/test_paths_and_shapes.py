"""Paths, hosts and body shapes, through real Envoy 1.40 with mTLS and the official SDKs.

No leak for a percent-encoded path or an LLM call on a path Weir does not know; a
known AI host's unrecognised API is a 404; and in sidecar-outbound mode (identity
from the proxy's node metadata) ordinary traffic passes byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import urllib.request
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2 as httpx
import openai
import pytest
from openai.types.chat import ChatCompletion

from mesh.sandbox import SANDBOX_WORKLOADS, TRUST_DOMAIN, MeshSandbox

AWS_KEY = "AKIAQ3EGUKZW5XYT7M2P"
PROMPT = [{"role": "user", "content": "hello"}]
CHECKOUT = SANDBOX_WORKLOADS["checkout"]


def decisions(mesh: MeshSandbox, path: str) -> list[dict[str, Any]]:
    return [
        json.loads(line.split(" weir.decision ", 1)[1])
        for line in mesh.weir_log().splitlines()
        if " weir.decision " in line and f'"path": {json.dumps(path)}' in line
    ]


def inventory(mesh: MeshSandbox) -> dict[str, Any]:
    with urllib.request.urlopen(mesh.weir_admin_url("/inventory"), timeout=5) as response:
        return dict(json.load(response))


# --- a percent-encoded path ----------------------------------------------------------


def test_a_percent_encoded_chat_path_with_a_forbidden_model_is_refused_unseen(
    mesh: MeshSandbox,
) -> None:
    client = mesh.openai_client("checkout")
    with pytest.raises(openai.PermissionDeniedError) as raised:
        client.post(
            "/chat/%63ompletions",
            cast_to=ChatCompletion,
            body={"model": "gpt-5", "messages": PROMPT},
        )
    assert "gpt-5" in raised.value.message
    assert mesh.upstream_requests() == []
    [record] = decisions(mesh, "/v1/chat/%63ompletions")
    assert record["provider"] == "openai.chat_completions"
    assert record["api_path"] == "/v1/chat/completions"
    assert (record["verdict"], record["recognised_by"]) == ("deny", "path")


@pytest.mark.parametrize(
    "path", ["/chat%2Fcompletions", "//chat/./completions", "/x/%2e%2e/chat/completions"]
)
def test_an_encoded_path_with_a_secret_in_the_prompt_is_blocked_unseen(
    mesh: MeshSandbox, path: str
) -> None:
    client = mesh.openai_client("checkout")
    with pytest.raises(openai.PermissionDeniedError) as raised:
        client.post(
            path,
            cast_to=ChatCompletion,
            body={"model": "gpt-4o", "messages": [{"role": "user", "content": AWS_KEY}]},
        )
    assert "aws-access-key-id" in raised.value.message and AWS_KEY not in raised.value.message
    assert mesh.upstream_requests() == []


def test_the_answer_on_a_percent_encoded_path_is_scanned(mesh: MeshSandbox) -> None:
    client = mesh.openai_client("checkout")
    reply = f"the key is {AWS_KEY}".encode()
    completion = client.post(
        "/chat/%63ompletions",
        cast_to=ChatCompletion,
        body={"model": "gpt-4o", "messages": PROMPT},
        options={"headers": {"x-fake-reply-b64": base64.b64encode(reply).decode()}},
    )
    text = completion.choices[0].message.content or ""
    assert AWS_KEY not in text and "[REDACTED:aws-access-key-id]" in text
    [seen] = mesh.upstream_requests()
    assert seen["path"] == "/v1/chat/completions"  # the upstream decoded it, as Weir did


# --- an LLM call on a path Weir does not know ----------------------------------------------


def test_an_llm_shaped_body_on_an_unknown_path_with_a_forbidden_model_is_refused(
    mesh: MeshSandbox,
) -> None:
    client = mesh.openai_client("checkout")
    with pytest.raises(openai.PermissionDeniedError) as raised:
        client.post(
            "/gateway/ask", cast_to=ChatCompletion, body={"model": "gpt-5", "messages": PROMPT}
        )
    assert "gpt-5" in raised.value.message
    assert mesh.upstream_requests() == []
    [record] = decisions(mesh, "/v1/gateway/ask")
    assert (record["recognised_by"], record["provider"]) == ("body", "openai.chat_completions")


def test_a_secret_in_an_llm_shaped_body_on_an_unknown_path_is_blocked(mesh: MeshSandbox) -> None:
    client = mesh.openai_client("checkout")
    with pytest.raises(openai.PermissionDeniedError) as raised:
        client.post(
            "/gateway/ask",
            cast_to=ChatCompletion,
            body={"model": "gpt-4o", "messages": [{"role": "user", "content": f"key {AWS_KEY}"}]},
        )
    assert AWS_KEY not in raised.value.message
    assert mesh.upstream_requests() == []


def test_an_anthropic_call_on_an_unknown_path_is_judged_in_anthropics_terms(
    mesh: MeshSandbox,
) -> None:
    client = mesh.anthropic_client("checkout")
    with pytest.raises(anthropic.PermissionDeniedError) as raised:
        client.post(
            "/proxy/anthropic/v1/messages",
            cast_to=anthropic.types.Message,
            body={"model": "claude-opus-4", "max_tokens": 16, "messages": PROMPT},
        )
    assert "claude-opus-4" in raised.value.message
    assert mesh.upstream_requests() == []
    [record] = decisions(mesh, "/proxy/anthropic/v1/messages")
    assert record["provider"] == "anthropic.messages"


def test_llm_calls_on_unknown_paths_show_in_the_inventory_by_authority(
    mesh: MeshSandbox,
) -> None:
    client = mesh.openai_client("checkout")
    with pytest.raises(openai.PermissionDeniedError):
        client.post(
            "/gateway/ask", cast_to=ChatCompletion, body={"model": "gpt-5", "messages": PROMPT}
        )
    authorities = {a["authority"]: a for a in inventory(mesh)["authorities"]}
    local = authorities["127.0.0.1"]
    assert local["shadow"] is True and local["recognisedBy"].get("body", 0) >= 1
    assert CHECKOUT in local["identities"]


# --- a known AI host ------------------------------------------------------------------


def test_an_unknown_api_on_a_known_ai_host_is_a_404_and_never_forwarded(
    mesh: MeshSandbox,
) -> None:
    client = mesh.openai_client("checkout", default_headers={"host": "api.openai.com"})
    with pytest.raises(openai.NotFoundError) as raised:
        client.models.list()
    assert "unknownApis: allow" in raised.value.message
    with pytest.raises(openai.NotFoundError):
        client.post("/embeddingz", cast_to=ChatCompletion, body={"data": "x"})
    assert mesh.upstream_requests() == []
    authorities = {a["authority"]: a for a in inventory(mesh)["authorities"]}
    assert authorities["api.openai.com"]["knownAiHost"] is True


def test_a_provider_prefixed_api_on_a_known_ai_host_is_judged_as_that_api(
    mesh: MeshSandbox,
) -> None:
    client = mesh.openai_client("checkout", default_headers={"host": "api.groq.com"})
    with pytest.raises(openai.PermissionDeniedError):
        client.post(
            "/openai/v1/chat/completions",
            cast_to=ChatCompletion,
            body={"model": "gpt-5", "messages": PROMPT},
        )
    assert mesh.upstream_requests() == []


# --- sidecar-outbound: every outbound call passes through Weir --------------------------

OUTBOUND_POLICY = f"""
trustDomain: {TRUST_DOMAIN}
defaultAction: deny
identitySources: [node-metadata]
workloads:
  - name: payments-checkout
    match: ["{CHECKOUT}"]
    models: ["gpt-4o"]
    request: [{{scanner: secrets, action: block}}]
    unknownApis: allow
"""


@pytest.fixture(scope="module")
def outbound(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshSandbox]:
    """Envoy as checkout's own outbound sidecar: identity is the proxy's node metadata."""
    with MeshSandbox(
        tmp_path_factory.mktemp("outbound-traffic"),
        policy_text=OUTBOUND_POLICY,
        request_attributes=("xds.node",),
        node_metadata={"NAMESPACE": "payments", "SERVICE_ACCOUNT": "checkout"},
    ) as running:
        yield running


def _post(mesh: MeshSandbox, path: str, body: bytes, content_type: str) -> httpx.Response:
    with httpx.Client(verify=mesh.ssl_context("etl"), timeout=120) as http:
        return http.post(f"{mesh.envoy_url}{path}", content=body,
                         headers={"content-type": content_type})


def assert_received_exactly(mesh: MeshSandbox, body: bytes) -> None:
    [seen] = mesh.upstream_requests()
    assert (seen["body_bytes"], seen["body_sha256"]) == (
        len(body), hashlib.sha256(body).hexdigest()
    )


def test_an_ordinary_json_call_passes_byte_for_byte_in_sidecar_outbound_mode(
    outbound: MeshSandbox,
) -> None:
    outbound.clear_upstream_requests()
    body = b'{ "order": 42, "input": {"sku": "A-1"},\n  "modelYear": 2024, "note": "caf\xc3\xa9" }'
    response = _post(outbound, "/api/orders?x=1", body, "application/json")
    assert response.status_code == 404  # the fake upstream has no such route: its own reply
    assert response.json()["error"]["message"] == "no route for POST /api/orders"
    assert_received_exactly(outbound, body)


def test_a_large_binary_upload_passes_byte_for_byte_in_sidecar_outbound_mode(
    outbound: MeshSandbox,
) -> None:
    outbound.clear_upstream_requests()
    body = os.urandom(20 * 1024 * 1024)
    response = _post(outbound, "/upload", body, "application/octet-stream")
    assert response.status_code == 404
    assert_received_exactly(outbound, body)


def test_a_json_upload_past_the_sniff_limit_passes_byte_for_byte(outbound: MeshSandbox) -> None:
    outbound.clear_upstream_requests()
    rows = [{"id": i, "text": "x" * 100} for i in range(100_000)]  # about 11 MiB
    body = json.dumps({"rows": rows}).encode() + b"\n"
    assert len(body) > 8 * 1024 * 1024
    response = _post(outbound, "/bulk", body, "application/json")
    assert response.status_code == 404
    assert_received_exactly(outbound, body)


def test_an_llm_call_padded_past_the_sniff_limit_never_reaches_the_upstream_whole(
    outbound: MeshSandbox,
) -> None:
    outbound.clear_upstream_requests()
    body = json.dumps(
        {"pad": "x" * (9 * 1024 * 1024), "model": "gpt-4o",
         "messages": [{"role": "user", "content": f"key {AWS_KEY}"}]}
    ).encode()
    response = _post(outbound, "/v1/chat/completionz", body, "application/json")
    assert response.status_code == 413
    assert all(r["body_bytes"] != len(body) for r in outbound.upstream_requests())


def test_an_llm_call_in_sidecar_outbound_mode_is_still_judged(outbound: MeshSandbox) -> None:
    outbound.clear_upstream_requests()
    client = outbound.openai_client("etl")
    with pytest.raises(openai.PermissionDeniedError):
        client.post("/internal/llm", cast_to=ChatCompletion,
                    body={"model": "gpt-5", "messages": PROMPT})
    assert outbound.openai_client("etl").chat.completions.create(
        model="gpt-4o", messages=PROMPT  # type: ignore[arg-type]
    ).choices


def test_unknown_apis_allow_lets_an_ai_hosts_other_api_through_and_records_it(
    outbound: MeshSandbox,
) -> None:
    outbound.clear_upstream_requests()
    client = outbound.openai_client("etl", default_headers={"host": "api.openai.com"})
    with pytest.raises(openai.NotFoundError) as raised:
        client.models.list()
    assert "no route for GET /v1/models" in raised.value.message  # the upstream's own 404
    [seen] = outbound.upstream_requests()
    assert seen["path"] == "/v1/models"
    [record] = decisions(outbound, "/v1/models")
    assert record["verdict"] == "allow" and "unknownApis" in record["reason"]
    authorities = {a["authority"]: a for a in inventory(outbound)["authorities"]}
    assert authorities["api.openai.com"]["recognisedBy"] == {"host": 1}
