"""`weir policy check` refuses bad tool rules; `weir policy explain --tool` explains them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

POLICY = """\
trustDomain: cluster.local
workloads:
  - name: agent
    match: ["spiffe://cluster.local/ns/agents/*"]
    tools: ["search_docs", "get_*"]
    mcp:
      request: [{scanner: secrets, action: block}]
      pinning: enforce
  - name: open
    match: ["spiffe://cluster.local/ns/open/*"]
"""
AGENT = "spiffe://cluster.local/ns/agents/sa/helper"


def weir(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "extproc.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_policy_check_rejects_a_bad_pinning_mode_with_file_path_and_reason(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(POLICY.replace("pinning: enforce", "pinning: sometimes"))
    done = weir("policy", "check", str(bad))
    assert done.returncode == 2
    assert f"{bad}:8: workloads[0].mcp.pinning: the string 'sometimes' is not allowed" in (
        done.stderr
    )


def test_policy_check_rejects_a_bad_tool_glob(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(POLICY.replace('"get_*"', '"get weather"'))
    done = weir("policy", "check", str(bad))
    assert done.returncode == 2 and "workloads[0].tools[1]: a tool glob may hold" in done.stderr


def test_explain_denies_a_tool_outside_the_list_and_names_the_rule(tmp_path: Path):
    good = tmp_path / "p.yaml"
    good.write_text(POLICY)
    done = weir(
        "policy", "explain", "--policy", str(good), "--identity", AGENT, "--tool", "delete_repo"
    )
    assert done.returncode == 1
    assert "decision:  DENIED: tool 'delete_repo' is not in workload 'agent' tools" in done.stdout
    assert "pinning enforce" in done.stdout


def test_explain_allows_a_tool_a_glob_covers(tmp_path: Path):
    good = tmp_path / "p.yaml"
    good.write_text(POLICY)
    done = weir(
        "policy", "explain", "--policy", str(good), "--identity", AGENT, "--tool", "get_weather"
    )
    assert done.returncode == 0
    assert "tool 'get_weather' is allowed by workload 'agent' (pattern 'get_*')" in done.stdout


def test_explain_allows_any_tool_for_a_workload_without_a_list(tmp_path: Path):
    good = tmp_path / "p.yaml"
    good.write_text(POLICY)
    other = "spiffe://cluster.local/ns/open/sa/x"
    done = weir(
        "policy", "explain", "--policy", str(good), "--identity", other, "--tool", "delete_repo"
    )
    assert done.returncode == 0 and "workload 'open' allows any tool" in done.stdout


def test_policy_check_compiles_the_mcp_rules_and_rejects_a_deny_list_that_cannot(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        POLICY.replace(
            "      request: [{scanner: secrets, action: block}]\n",
            '      request: [{scanner: deny-list, action: block, terms: ["\\u200b"]}]\n',
        )
    )
    done = weir("policy", "check", str(bad))
    assert done.returncode == 2
    assert f"{bad}:7: workloads[0].mcp.request[0].terms[0]: " in done.stderr
