"""ext_authz's Check makes the same end-user and destination decisions as ext_proc."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from extproc.audit import subject_hash
from extproc.authz import decide_check
from mesh.policy import Policy, load_policy
from mesh.sandbox_idp import SandboxIdp

ISSUER = "https://idp.example.com"
ASSISTANT = "spiffe://cluster.local/ns/finance/sa/assistant"


@pytest.fixture(scope="module")
def idp() -> SandboxIdp:
    return SandboxIdp.create(ISSUER)


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory, idp: SandboxIdp) -> Policy:
    root = tmp_path_factory.mktemp("authz")
    (root / "jwks.json").write_bytes(idp.jwks())
    path = root / "policy.yaml"
    path.write_text(f"""\
trustDomain: cluster.local
jwt:
  header: x-user-token
  issuers: [{{issuer: "{ISSUER}", audiences: [weir], jwks: {{file: jwks.json}}}}]
workloads:
  - name: finance-assistant
    match: ["{ASSISTANT}"]
    users: ["group:finance-analysts"]
    requireUser: true
    upstreams: ["api.openai.com"]
""")
    return load_policy(path)


def check(policy: Policy, token: str | None, authority: str = "api.openai.com"):
    headers = {"x-user-token": token} if token else {}
    return decide_check(policy, ASSISTANT, "/v1/chat/completions", headers, None, "POST",
                        authority)


def test_an_admitted_user_is_allowed_and_recorded_as_a_hash(
    policy: Policy, idp: SandboxIdp
) -> None:
    verdict = check(policy, idp.token(idp.claims("ana", "weir", groups=["finance-analysts"])))
    assert verdict.allowed and verdict.verdict == "allow"
    assert verdict.user == subject_hash(ISSUER, "ana")


@pytest.mark.parametrize(
    ("claims", "status", "reason"),
    [
        (None, 401, "requires an end-user token"),
        ({"groups": ["sales"]}, 403, "end user is not in workload"),
        ({"groups": ["finance-analysts"], "exp": 1}, 401, "token has expired"),
    ],
    ids=["no-token", "wrong-group", "expired"],
)
def test_a_refused_user_gets_the_status_and_reason_in_the_provider_format(
    policy: Policy, idp: SandboxIdp, claims: dict[str, object] | None, status: int, reason: str
) -> None:
    token = None if claims is None else idp.token({**idp.claims("ana", "weir"), **claims})
    verdict = check(policy, token)
    assert not verdict.allowed and verdict.status == status
    assert reason in json.loads(verdict.body)["error"]["message"]


def test_a_forbidden_upstream_is_refused_by_check(policy: Policy, idp: SandboxIdp) -> None:
    token = idp.token(idp.claims("ana", "weir", groups=["finance-analysts"]))
    verdict = check(policy, token, authority="evil.example:443")
    assert verdict.status == 403 and b"upstream 'evil.example:443'" in verdict.body


def test_audit_mode_lets_a_refused_user_through_as_audit(tmp_path: Path, policy: Policy) -> None:
    from dataclasses import replace

    verdict = check(replace(policy, mode="audit"), None)
    assert verdict.allowed and verdict.verdict == "audit"
    assert verdict.token_rejection == "user:missing"
