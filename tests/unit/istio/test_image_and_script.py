"""The container image recipe and the kind script: linted, and consistent with the package."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mesh.manifests import ADMIN_PORT, GRPC_PORT, ISTIO_DIR

REPO = ISTIO_DIR.parent
DOCKERFILE = REPO / "Dockerfile"


def tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    assert found, f"{name} not found; run `make test` (pip install -e '.[test]')"
    return found


@pytest.mark.parametrize(
    ("linter", "target"),
    [
        (["hadolint", "--failure-threshold", "info"], DOCKERFILE),
        (["shellcheck", "--severity=style", "--enable=all"], ISTIO_DIR / "e2e-kind.sh"),
    ],
    ids=["hadolint-Dockerfile", "shellcheck-e2e-kind"],
)
def test_the_linter_finds_nothing(linter: list[str], target: Path) -> None:
    result = subprocess.run(
        [tool(linter[0]), *linter[1:], str(target)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_kind_script_is_executable_and_strict() -> None:
    script = ISTIO_DIR / "e2e-kind.sh"
    assert script.stat().st_mode & 0o111
    assert "set -euo pipefail" in script.read_text()


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    return [
        (line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1])
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_the_image_copies_every_package_the_project_installs() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    found = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.rstrip("*") for p in found}
    sources = {
        source
        for op, args in dockerfile_instructions()
        if op == "COPY" and not args.startswith("--from")
        for source in args.split()[:-1]
    }
    assert packages | {"pyproject.toml", "README.md"} <= sources


def test_the_image_installs_only_runtime_extras_and_runs_as_a_non_root_user() -> None:
    instructions = dockerfile_instructions()
    installs = [a for op, a in instructions if op == "RUN" and "pip install" in a]
    assert "'.[controller]'" in installs[0]
    # The only other install rewrites opentelemetry-proto's files over xds-protos's copies,
    # without pulling in anything.
    assert all("--no-deps" in a and '"opentelemetry-proto==' in a for a in installs[1:])
    assert len(installs) <= 2
    assert sum(op == "FROM" for op, _ in instructions) >= 2, "multi-stage: build, runtime"
    users = [a for op, a in instructions if op == "USER"]
    assert users and not users[-1].startswith(("root", "0"))


def test_the_image_warms_the_numba_cache_at_build_time_and_probes_readyz() -> None:
    text = DOCKERFILE.read_text()
    assert 'python -c "from extproc.scanner import warm_up; warm_up()"' in text
    assert f"http://127.0.0.1:{ADMIN_PORT}/readyz" in text
    [expose] = [a for op, a in dockerfile_instructions() if op == "EXPOSE"]
    assert set(expose.split()) == {str(GRPC_PORT), str(ADMIN_PORT)}


def test_the_deployment_reads_the_numba_cache_from_where_the_image_warms_it() -> None:
    # The init container copies the baked cache from the image's NUMBA_CACHE_DIR.
    [baked] = re.findall(r"NUMBA_CACHE_DIR=(\S+)", DOCKERFILE.read_text())
    deployment = (ISTIO_DIR / "base" / "deployment.yaml").read_text()
    assert f'"{baked}/."' in deployment


def test_the_build_context_leaves_out_tests_venv_and_git() -> None:
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests"} <= set(ignored)
