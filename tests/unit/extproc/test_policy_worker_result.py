"""A reload's result crosses from the worker process by pickle: a policy with JWKS keys too."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from extproc.policy_store import _load_in_worker
from mesh.jwt import LoadedKeys, VerifiedToken, verify
from mesh.sandbox_idp import SandboxIdp

ISSUER = "https://idp.example.com"


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_a_policy_with_jwks_keys_survives_the_trip_from_the_worker(
    tmp_path: Path, alg: str
) -> None:
    idp = SandboxIdp.create(ISSUER, alg=alg)
    (tmp_path / "users.json").write_bytes(idp.jwks())
    (tmp_path / "policy.yaml").write_text(f"""\
trustDomain: cluster.local
jwt:
  issuers:
    - {{issuer: "{ISSUER}", audiences: [weir], jwks: {{file: users.json}}, algorithms: [{alg}]}}
workloads:
  - name: app
    match: ["spiffe://cluster.local/ns/a/sa/app"]
""")
    result = _load_in_worker(str(tmp_path / "policy.yaml"))
    assert result[0] == "ok"
    _, policy, plans = pickle.loads(pickle.dumps(result))
    assert plans.digest == policy.digest
    # The keys that came back still verify the issuer's tokens.
    users = policy.user_tokens
    assert users is not None
    token = idp.token(idp.claims("bob", "weir"))
    verified = verify(token, users.issuers, LoadedKeys())
    assert isinstance(verified, VerifiedToken) and verified.subject == "bob"
