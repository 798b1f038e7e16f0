"""The `weir` console script, run as a user runs it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

WEIR = shutil.which("weir") or str(Path(sys.executable).parent / "weir")
VALID = Path(__file__).parents[2] / "data" / "policies" / "valid-full.yaml"


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([WEIR, *args], capture_output=True, text=True, timeout=timeout)


def test_policy_check_accepts_a_valid_file() -> None:
    result = run("policy", "check", str(VALID))
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_policy_check_names_file_path_and_reason_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("trustDomain: cluster.local\nworkloads:\n  - name: x\n    match: []\n")
    result = run("policy", "check", str(bad))
    assert result.returncode == 2
    assert f"{bad}:4: workloads[0].match:" in result.stderr


def test_policy_explain_exits_1_for_a_denied_identity() -> None:
    result = run(
        "policy", "explain", "--policy", str(VALID),
        "--identity", "spiffe://cluster.local/ns/nowhere/sa/nobody",
    )
    assert result.returncode == 1
    assert "defaultAction" in result.stdout


@pytest.mark.parametrize(
    ("policy_text", "message"),
    [("mode: sometimes\n", "invalid policy"), (None, "invalid policy")],
    ids=["invalid", "missing"],
)
def test_serve_refuses_to_start_with_a_bad_policy(
    tmp_path: Path, policy_text: str | None, message: str
) -> None:
    policy = tmp_path / "policy.yaml"
    if policy_text is not None:
        policy.write_text(policy_text)
    result = run(
        "serve", "--policy", str(policy),
        "--grpc-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_rejects_a_malformed_listen_address(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("trustDomain: cluster.local\n")
    result = run("serve", "--policy", str(policy), "--grpc-listen", "nonsense",
                 "--admin-listen", "127.0.0.1:0")
    assert result.returncode == 2
    assert "HOST:PORT" in result.stderr


def test_a_bad_byte_size_is_a_usage_error() -> None:
    result = run("serve", "--policy", "x", "--max-request-body", "lots")
    assert result.returncode == 2
    assert "not a byte size" in result.stderr


def test_the_readme_policy_example_passes_policy_check(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    example = readme.split("## Policy", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    policy = tmp_path / "readme-policy.yaml"
    policy.write_text(example)
    result = run("policy", "check", str(policy))
    assert result.returncode == 0, result.stderr
