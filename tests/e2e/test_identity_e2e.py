"""Who is calling, as Envoy and Weir establish it over real mTLS."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from mesh.certs import CertAuthority, sandbox_server_spiffe_id
from mesh.sandbox import SANDBOX_WORKLOADS, TRUST_DOMAIN, MeshSandbox

PROMPT = [{"role": "user", "content": "hello"}]
CHECKOUT = SANDBOX_WORKLOADS["checkout"]
NOTEBOOK = SANDBOX_WORKLOADS["notebook"]

XFCC_POLICY = f"""
trustDomain: {TRUST_DOMAIN}
defaultAction: deny
identitySources: [xfcc]
xfcc: {{trustedProxies: ["{sandbox_server_spiffe_id(TRUST_DOMAIN)}"]}}
workloads:
  - name: payments-checkout
    match: ["{CHECKOUT}"]
"""


@pytest.mark.parametrize(
    "forged",
    [
        f"By={NOTEBOOK};URI={CHECKOUT}",
        f'By="{sandbox_server_spiffe_id(TRUST_DOMAIN)}";URI="{CHECKOUT}"',
        f"URI={CHECKOUT},By={sandbox_server_spiffe_id(TRUST_DOMAIN)};URI={CHECKOUT}",
    ],
    ids=["untrusted-by", "claims-the-proxy-itself", "two-elements"],
)
def test_a_client_forged_xfcc_header_does_not_change_the_identity(
    mesh: MeshSandbox, forged: str
) -> None:
    client = mesh.openai_client("etl", default_headers={"x-forwarded-client-cert": forged})
    with pytest.raises(openai.PermissionDeniedError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=PROMPT)
    assert SANDBOX_WORKLOADS["etl"] in raised.value.message
    assert mesh.upstream_requests() == []


@pytest.fixture(scope="module")
def xfcc_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshSandbox]:
    """A sandbox whose policy takes identity from the XFCC element Envoy itself appends."""
    with MeshSandbox(tmp_path_factory.mktemp("xfcc"), policy_text=XFCC_POLICY) as running:
        yield running


def test_xfcc_identity_comes_from_the_element_the_trusted_proxy_set(
    xfcc_mesh: MeshSandbox,
) -> None:
    completion = xfcc_mesh.openai_client("checkout").chat.completions.create(
        model="gpt-4o", messages=PROMPT
    )
    assert completion.choices[0].message.content


def test_xfcc_identity_ignores_an_element_the_client_forged(xfcc_mesh: MeshSandbox) -> None:
    forged = f"By={sandbox_server_spiffe_id(TRUST_DOMAIN)};URI={CHECKOUT}"
    client = xfcc_mesh.openai_client("etl", default_headers={"x-forwarded-client-cert": forged})
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="gpt-4o", messages=PROMPT)


def test_a_client_without_a_certificate_is_refused_by_envoys_tls(mesh: MeshSandbox) -> None:
    client = mesh.openai_client(None)
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4o", messages=PROMPT)
    assert mesh.upstream_requests() == []


def test_a_certificate_from_another_ca_is_refused_by_envoys_tls(
    mesh: MeshSandbox, tmp_path: Path
) -> None:
    rogue = CertAuthority.create(TRUST_DOMAIN, common_name="rogue CA").issue(CHECKOUT)
    (tmp_path / "rogue.pem").write_bytes(rogue.cert_pem)
    (tmp_path / "rogue-key.pem").write_bytes(rogue.key_pem)
    assert mesh.pki is not None
    context = ssl.create_default_context(cafile=str(mesh.pki.ca))
    context.load_cert_chain(str(tmp_path / "rogue.pem"), str(tmp_path / "rogue-key.pem"))
    client = openai.OpenAI(
        base_url=f"{mesh.envoy_url}/v1",
        api_key="x",
        http_client=openai.DefaultHttpxClient(verify=context),
        max_retries=0,
    )
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4o", messages=PROMPT)
    assert mesh.upstream_requests() == []


NODE_POLICY = f"""
trustDomain: {TRUST_DOMAIN}
defaultAction: deny
identitySources: [node-metadata]
workloads:
  - name: payments-checkout
    match: ["{CHECKOUT}"]
    models: ["gpt-4o"]
"""


@pytest.fixture(scope="module")
def outbound_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshSandbox]:
    """Envoy as checkout's own outbound sidecar: identity is the proxy's node metadata."""
    with MeshSandbox(
        tmp_path_factory.mktemp("outbound"),
        policy_text=NODE_POLICY,
        request_attributes=("xds.node",),
        node_metadata={"NAMESPACE": "payments", "SERVICE_ACCOUNT": "checkout"},
    ) as running:
        yield running


def test_node_metadata_identity_is_the_proxys_own_workload(outbound_mesh: MeshSandbox) -> None:
    # Whatever certificate reaches the listener, the sidecar speaks for its own workload.
    client = outbound_mesh.openai_client("etl")
    assert client.chat.completions.create(model="gpt-4o", messages=PROMPT).choices
    with pytest.raises(openai.PermissionDeniedError) as raised:
        client.chat.completions.create(model="gpt-5", messages=PROMPT)
    assert "payments-checkout" in raised.value.message
