"""`weir serve` as operators see it: probes, metrics, policy reload and its failures."""

from __future__ import annotations

import openai
from weir_admin import eventually, get, metric, write_atomically

from mesh.sandbox import SANDBOX_POLICY, SANDBOX_WORKLOADS, MeshSandbox

PROMPT = [{"role": "user", "content": "hello"}]




def test_liveness_readiness_and_metrics_answer(mesh: MeshSandbox) -> None:
    assert get(mesh.weir_admin_url("/healthz"))[0] == 200
    status, text = get(mesh.weir_admin_url("/readyz"))
    assert status == 200 and "policy=" in text
    mesh.openai_client("checkout").chat.completions.create(model="gpt-4o", messages=PROMPT)
    status, metrics = get(mesh.weir_admin_url("/metrics"))
    assert status == 200
    assert (
        'weir_requests_total{decision="allow",model="gpt-4o",'
        'provider="openai.chat_completions",workload="payments-checkout"}'
    ) in metrics
    assert "weir_policy_info{" in metrics
    assert "weir_ready 1.0" in metrics




def etl_is_allowed(mesh: MeshSandbox) -> bool:
    try:
        mesh.openai_client("etl").chat.completions.create(model="gpt-4o", messages=PROMPT)
        return True
    except openai.PermissionDeniedError:
        return False


def test_a_changed_policy_is_picked_up_and_a_broken_one_keeps_the_last_good_in_force(
    private_sandbox: MeshSandbox,
) -> None:
    mesh = private_sandbox
    assert not etl_is_allowed(mesh)

    allow_etl = SANDBOX_POLICY + (
        f'  - name: batch\n    match: ["{SANDBOX_WORKLOADS["etl"]}"]\n'
    )
    write_atomically(mesh.policy_path, allow_etl)
    assert eventually(lambda: etl_is_allowed(mesh)), "the new policy was not picked up"

    invalid_before = metric(mesh, 'weir_policy_reloads_total{result="invalid"}')
    write_atomically(mesh.policy_path, allow_etl + "    models: notalist: [\n")
    assert eventually(
        lambda: metric(mesh, 'weir_policy_reloads_total{result="invalid"}') > invalid_before
    ), "the invalid policy was not counted"
    assert "policy reload rejected" in mesh.weir_log()
    assert etl_is_allowed(mesh), "the last good policy must stay in force"
    assert get(mesh.weir_admin_url("/readyz"))[0] == 200


def test_sigterm_turns_readiness_off_and_the_process_exits_zero(
    private_sandbox: MeshSandbox,
) -> None:
    assert get(private_sandbox.weir_admin_url("/readyz"))[0] == 200
    assert private_sandbox.stop_weir() == 0


def test_unknown_workloads_stay_denied_while_a_broken_policy_is_rejected(
    private_sandbox: MeshSandbox,
) -> None:
    write_atomically(private_sandbox.policy_path, "defaultAction: allow\nbogusKey: 1\n")
    assert eventually(lambda: "policy reload rejected" in private_sandbox.weir_log())
    assert "trustDomain: required key 'trustDomain' is missing" in private_sandbox.weir_log()
    assert not etl_is_allowed(private_sandbox)
