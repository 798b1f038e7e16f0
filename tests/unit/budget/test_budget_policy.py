"""The policy keys of budgets: a workload's `budget` and the document's `budgetStore`.
A bad value is a load error with file, path and reason; `weir policy check` exits 2."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from mesh.budget_policy import Budget
from mesh.policy import PolicyError, load_policy
from mesh.policy_cli import check
from mesh.sandbox_idp import SandboxIdp

ISSUER = "https://idp.example.com"
JWT = f"""\
jwt:
  issuers:
    - issuer: {ISSUER}
      audiences: [weir]
      jwks: {{file: jwks.json}}
"""


def policy_text(budget: str, top: str = "", jwt: bool = False) -> str:
    return (
        "trustDomain: cluster.local\n"
        + top
        + (JWT if jwt else "")
        + "workloads:\n"
        "  - name: checkout\n"
        '    match: ["spiffe://cluster.local/ns/payments/sa/checkout"]\n'
        + budget
    )


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "jwks.json").write_bytes(SandboxIdp.create(ISSUER).jwks())
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def test_a_budget_and_a_budget_store_load(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, policy_text(
        "    budget: {tokens: 200000, window: 1d, per: user}\n",
        top="budgetStore: {onUnavailable: open}\n", jwt=True,
    )))
    assert policy.workloads[0].budget == Budget(tokens=200000, window="1d", per="user")
    assert policy.budget_store.on_unavailable == "open"


def test_without_budget_keys_nothing_is_metered_and_the_store_fails_closed(
    tmp_path: Path,
) -> None:
    policy = load_policy(write(tmp_path, policy_text("")))
    assert policy.workloads[0].budget is None
    assert policy.budget_store.on_unavailable == "closed"


@pytest.mark.parametrize(
    ("budget", "top", "path", "reason"),
    [
        ("    budget: {tokens: 0, window: 1d}\n", "", "workloads[0].budget.tokens",
         "must be a positive number"),
        ("    budget: {tokens: -5, window: 1h}\n", "", "workloads[0].budget.tokens",
         "must be a positive number"),
        ("    budget: {tokens: '100', window: 1h}\n", "", "workloads[0].budget.tokens", ""),
        ("    budget: {tokens: 100, window: 2h}\n", "", "workloads[0].budget.window", ""),
        ("    budget: {tokens: 100, window: 1d, per: team}\n", "", "workloads[0].budget.per", ""),
        ("    budget: {tokens: 100, window: 1d, per: user}\n", "", "workloads[0].budget.per",
         "needs a 'jwt' section"),
        ("    budget: {tokens: 100, window: 1d, cap: 3}\n", "", "workloads[0].budget.cap",
         "unknown key"),
        ("", "budgetStore: {onUnavailable: maybe}\n", "budgetStore.onUnavailable", ""),
    ],
)
def test_a_bad_budget_value_is_refused_with_its_path(
    tmp_path: Path, budget: str, top: str, path: str, reason: str
) -> None:
    with pytest.raises(PolicyError) as raised:
        load_policy(write(tmp_path, policy_text(budget, top=top)))
    assert raised.value.path == path
    assert reason in raised.value.reason


def test_weir_policy_check_names_file_path_and_reason_for_a_bad_window(tmp_path: Path) -> None:
    path = write(tmp_path, policy_text("    budget: {tokens: 100, window: 1w}\n"))
    out, err = io.StringIO(), io.StringIO()
    assert check(str(path), out, err) == 2
    where = rf"{re.escape(str(path))}:\d+: workloads\[0\]\.budget\.window: "
    assert re.match(where, err.getvalue())
    assert "1m" in err.getvalue() and "30d" in err.getvalue()


@pytest.mark.parametrize(
    ("window", "now", "start", "resets_in"),
    [
        ("1m", 120.5, 120, 60),
        ("1h", 3600 * 5 + 10, 3600 * 5, 3590),
        ("1d", 86400 * 3 + 86399.2, 86400 * 3, 1),
        ("30d", 30 * 86400 * 2 + 5, 30 * 86400 * 2, 30 * 86400 - 5),
    ],
)
def test_windows_are_fixed_and_aligned_to_utc(
    window: str, now: float, start: int, resets_in: int
) -> None:
    budget = Budget(tokens=1, window=window)
    assert budget.window_start(now) == start
    assert budget.resets_in(now) == resets_in
