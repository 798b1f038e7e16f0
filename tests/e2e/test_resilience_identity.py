"""Identity attacks that get past Envoy's TLS: certificates from the sandbox's own CA whose
SPIFFE ID is from a foreign trust domain, or carries a query, fragment or port. Envoy
accepts the chain and hands Weir the URI SAN; Weir's strict parse rejects it, so the
caller is `unauthenticated` and denied before the upstream.

(Forged XFCC elements, an untrusted `By=`, no certificate and another CA are in
`test_identity_e2e.py`; the parser cases in `tests/unit/mesh/`.)
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from mesh.sandbox import SANDBOX_WORKLOADS, MeshSandbox

CHECKOUT = SANDBOX_WORKLOADS["checkout"]  # the policy allows this one
LOOKALIKES = {
    "foreign": "spiffe://evil.example/ns/payments/sa/checkout",
    "query": f"{CHECKOUT}?as=admin",
    "fragment": f"{CHECKOUT}#x",
    "port": "spiffe://cluster.local:443/ns/payments/sa/checkout",
}
PROMPT = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def lookalike_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshSandbox]:
    workloads = {**SANDBOX_WORKLOADS, **LOOKALIKES}
    with MeshSandbox(tmp_path_factory.mktemp("lookalikes"), workloads=workloads) as running:
        yield running


@pytest.mark.parametrize("name", list(LOOKALIKES))
def test_a_lookalike_spiffe_id_from_a_trusted_ca_is_denied(
    lookalike_mesh: MeshSandbox, name: str
) -> None:
    lookalike_mesh.clear_upstream_requests()
    with pytest.raises(openai.PermissionDeniedError) as raised:
        lookalike_mesh.openai_client(name).chat.completions.create(
            model="gpt-4o", messages=PROMPT)
    assert "unauthenticated" in raised.value.message
    assert lookalike_mesh.upstream_requests() == []
    # The genuine identity through the same Envoy and Weir is allowed.
    assert lookalike_mesh.openai_client("checkout").chat.completions.create(
        model="gpt-4o", messages=PROMPT).choices
