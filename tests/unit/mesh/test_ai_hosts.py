"""Known AI hosts: the built-in list, `aiHosts` globs, `unknownApis`, and their validation."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from mesh.ai_hosts import BUILTIN_AI_HOSTS, AiHosts, authority_host, host_glob_problem
from mesh.policy import PolicyError, parse_policy

BASE = """\
trustDomain: cluster.local
workloads:
  - name: app
    match: ["spiffe://cluster.local/ns/app/*"]
"""


def test_every_built_in_host_is_a_valid_glob() -> None:
    assert [host for host in BUILTIN_AI_HOSTS if host_glob_problem(host)] == []


@pytest.mark.parametrize(
    ("authority", "known"),
    [
        ("api.openai.com", True),
        ("API.OpenAI.com:443", True),
        ("api.openai.com.", True),
        ("my-resource.openai.azure.com", True),
        ("bedrock-runtime.eu-west-1.amazonaws.com", True),
        ("generativelanguage.googleapis.com", True),
        ("api.anthropic.com:8443", True),
        ("openai.com", False),
        ("api.openai.com.evil.example", False),
        ("evilapi.openai.com", False),
        ("s3.amazonaws.com", False),
        ("llm", False),
        ("", False),
        ("[::1]:8080", False),
    ],
)
def test_the_built_in_list_knows_the_well_known_ai_hosts(authority: str, known: bool) -> None:
    assert AiHosts().is_ai_host(authority) is known


def test_policy_ai_hosts_add_globs_to_the_built_in_list() -> None:
    policy = parse_policy(BASE + 'aiHosts: ["llm.internal", "*.vllm.corp"]\n')
    assert policy.ai_hosts.is_ai_host("llm.internal:8000")
    assert policy.ai_hosts.is_ai_host("gpu-1.vllm.corp")
    assert not policy.ai_hosts.is_ai_host("vllm.corp")
    assert policy.ai_hosts.is_ai_host("api.openai.com")
    assert not parse_policy(BASE).ai_hosts.is_ai_host("llm.internal")


def test_authority_host_drops_port_case_userinfo_and_final_dot() -> None:
    assert authority_host("User@API.OpenAI.com.:443") == "api.openai.com"
    assert authority_host("[::1]:80") == "[::1]"


def test_unknown_apis_is_deny_unless_a_workload_says_allow() -> None:
    assert parse_policy(BASE).workloads[0].unknown_apis == "deny"
    allowed = parse_policy(BASE + "    unknownApis: allow\n")
    assert allowed.workloads[0].unknown_apis == "allow"


BAD = [
    ('aiHosts: ["https://api.example.com"]', "aiHosts[0]", "leave out the scheme"),
    ('aiHosts: ["llm.example.com/v1"]', "aiHosts[0]", "leave out the path"),
    ('aiHosts: ["ok.example.com", "llm.example.com:8000"]', "aiHosts[1]", "leave out the port"),
    ('aiHosts: ["LLM.example.com"]', "aiHosts[0]", "lower case"),
    ('aiHosts: ["*"]', "aiHosts[0]", "matches every host"),
    ('aiHosts: ["*.*"]', "aiHosts[0]", "matches every host"),
    ('aiHosts: [""]', "aiHosts[0]", "must not be empty"),
    ('aiHosts: ["llm..example.com"]', "aiHosts[0]", "empty label"),
    ('aiHosts: ["llm_1.example.com"]', "aiHosts[0]", "not a DNS label"),
    ('aiHosts: "llm.example.com"', "aiHosts", "expected a list"),
    ("aiHosts: [42]", "aiHosts[0]", "expected a string"),
]


@pytest.mark.parametrize(("line", "path", "reason"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_ai_host_is_rejected_at_load_with_its_path(line: str, path: str, reason: str) -> None:
    with pytest.raises(PolicyError) as raised:
        parse_policy(BASE + line + "\n", "p.yaml")
    assert raised.value.path == path
    assert reason in raised.value.reason


@pytest.mark.parametrize("value", ["block", "yes", "Allow", "[allow]"])
def test_a_bad_unknown_apis_value_is_rejected_at_load(value: str) -> None:
    with pytest.raises(PolicyError) as raised:
        parse_policy(BASE + f"    unknownApis: {value}\n", "p.yaml")
    assert raised.value.path == "workloads[0].unknownApis"
    assert "expected one of: allow, deny" in raised.value.reason


def _policy_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "extproc.cli", "policy", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("extra", "where", "reason"),
    [
        ('aiHosts: ["llm.example.com:8000"]\n', "aiHosts[0]", "leave out the port"),
        (
            "    unknownApis: sometimes\n",
            "workloads[0].unknownApis",
            "expected one of: allow, deny",
        ),
    ],
    ids=["aiHosts", "unknownApis"],
)
def test_weir_policy_check_rejects_bad_new_keys_with_file_path_and_reason(
    tmp_path: Path, extra: str, where: str, reason: str
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(BASE + extra)
    done = _policy_check(policy)
    assert done.returncode == 2
    # file:line: path: reason
    assert re.match(rf"{re.escape(str(policy))}:\d+: {re.escape(where)}: ", done.stderr)
    assert reason in done.stderr


def test_weir_policy_check_accepts_the_new_keys(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(BASE + "    unknownApis: allow\n" + 'aiHosts: ["*.vllm.corp"]\n')
    done = _policy_check(policy)
    assert done.returncode == 0, done.stderr
