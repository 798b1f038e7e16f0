"""ext_authz end to end: official SDKs -> real Envoy (mTLS, ext_authz only) -> Weir's Check.

Envoy runs the ext_authz filter and *no* ext_proc filter, so every denial
here was made by `Authorization/Check` alone, from the peer certificate's
SPIFFE ID and the path.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest
from weir_admin import metric_matching

from mesh.sandbox import MeshSandbox

MESSAGES = [{"role": "user", "content": "echo: header-only guard"}]


@pytest.fixture(scope="module")
def authz_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshSandbox]:
    sandbox = MeshSandbox(tmp_path_factory.mktemp("authz"), ext_proc=False, ext_authz=True)
    with sandbox as running:
        yield running


@pytest.fixture
def mesh(authz_mesh: MeshSandbox) -> MeshSandbox:
    authz_mesh.clear_upstream_requests()
    return authz_mesh


def checks_counted(mesh: MeshSandbox, verdict: str) -> float:
    return metric_matching(
        mesh, rf'weir_authz_checks_total{{verdict="{verdict}",workload="[^"]*"}} \S+$'
    )


def test_the_sandbox_envoy_runs_ext_authz_and_not_ext_proc(mesh: MeshSandbox) -> None:
    envoy_yaml = Path(mesh.workdir / "envoy.yaml").read_text()
    assert "envoy.filters.http.ext_authz" in envoy_yaml
    assert "envoy.filters.http.ext_proc" not in envoy_yaml


@pytest.mark.parametrize(
    ("workload", "model"),
    [("checkout", "gpt-4o"), ("notebook", "o3")],
    ids=["exact-identity-rule", "namespace-glob-rule"],
)
def test_an_allowed_identity_gets_its_completion_through_ext_authz(
    mesh: MeshSandbox, workload: str, model: str
) -> None:
    before = checks_counted(mesh, "allow")
    completion = mesh.openai_client(workload).chat.completions.create(
        model=model, messages=MESSAGES
    )
    assert completion.choices[0].message.content == "header-only guard"
    assert [r["path"] for r in mesh.upstream_requests()] == ["/v1/chat/completions"]
    assert checks_counted(mesh, "allow") == before + 1


def test_an_unknown_identity_gets_openai_permission_denied_and_the_upstream_sees_nothing(
    mesh: MeshSandbox,
) -> None:
    before = checks_counted(mesh, "deny")
    with pytest.raises(openai.PermissionDeniedError) as raised:
        mesh.openai_client("etl").chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True
        )
    assert raised.value.status_code == 403
    assert raised.value.response.headers["content-type"] == "application/json"
    assert raised.value.response.headers["x-weir-verdict"] == "deny"
    assert raised.value.code == "weir_policy_denied"
    assert "no workload matches 'spiffe://cluster.local/ns/batch/sa/etl'" in raised.value.message
    assert mesh.upstream_requests() == []
    assert checks_counted(mesh, "deny") == before + 1


def test_a_denied_anthropic_call_gets_the_anthropic_error_format(mesh: MeshSandbox) -> None:
    with pytest.raises(anthropic.PermissionDeniedError) as raised:
        mesh.anthropic_client("etl").messages.create(
            model="claude-sonnet-4", max_tokens=10, messages=MESSAGES
        )
    assert raised.value.body["error"]["type"] == "permission_error"
    assert mesh.upstream_requests() == []


def test_header_only_authz_cannot_judge_the_model_so_a_disallowed_model_passes(
    mesh: MeshSandbox,
) -> None:
    """Pins the documented limit of ext_authz: no body, no model. checkout may not
    use gpt-5, yet Check lets the request through; only ext_proc can refuse it."""
    completion = mesh.openai_client("checkout").chat.completions.create(
        model="gpt-5", messages=MESSAGES
    )
    assert completion.choices[0].message.content == "header-only guard"
    assert len(mesh.upstream_requests()) == 1
