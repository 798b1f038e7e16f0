"""End-to-end fixtures: the real sandbox (Envoy 1.40, mTLS, `weir serve`, fake upstream)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesh.sandbox import SANDBOX_POLICY, MeshSandbox


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshSandbox]:
    """One sandbox shared by the read-only tests; tests that break it start their own."""
    with MeshSandbox(tmp_path_factory.mktemp("sandbox")) as running:
        yield running


@pytest.fixture
def mesh(sandbox: MeshSandbox) -> MeshSandbox:
    """The shared sandbox with an empty upstream log, so each test sees only its own calls."""
    sandbox.clear_upstream_requests()
    return sandbox


@pytest.fixture
def private_sandbox(tmp_path: Path) -> Iterator[MeshSandbox]:
    with MeshSandbox(tmp_path / "sandbox") as running:
        yield running


@pytest.fixture(scope="session")
def unscanned_policy() -> str:
    """The sandbox policy without response rules: answers flow unscanned, still metered."""
    policy = re.sub(r"    response:.*?(?=  - name|\Z)", "", SANDBOX_POLICY, flags=re.S)
    assert "response" not in policy and "request" in policy
    return policy
