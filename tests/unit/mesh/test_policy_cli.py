"""`weir policy check|explain`: exit codes and what the operator reads."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from mesh.policy_cli import check, explain

DATA = Path(__file__).resolve().parents[2] / "data" / "policies"
FULL = str(DATA / "valid-full.yaml")
AUDIT = str(DATA / "valid-audit.yaml")
CHECKOUT = "spiffe://cluster.local/ns/payments/sa/checkout"


def run_check(path: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = check(path, out, err)
    return code, out.getvalue(), err.getvalue()


def run_explain(path: str, identity: str, model: str | None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = explain(path, identity, model, out, err)
    return code, out.getvalue(), err.getvalue()


def digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


@pytest.mark.parametrize(
    ("name", "summary"),
    [
        pytest.param(
            "valid-full.yaml",
            "ok (3 workloads, defaultAction=deny, mode=enforce, "
            "identitySources=peer-certificate,node-metadata,xfcc, digest=",
            id="full",
        ),
        pytest.param(
            "valid-minimal.yaml",
            "ok (0 workloads, defaultAction=deny, mode=enforce, "
            "identitySources=peer-certificate, digest=",
            id="minimal",
        ),
        pytest.param(
            "valid-audit.yaml",
            "ok (1 workload, defaultAction=deny, mode=audit,",
            id="audit_singular_workload",
        ),
    ],
)
def test_check_prints_a_one_line_summary_and_exits_0(name: str, summary: str) -> None:
    path = str(DATA / name)
    code, out, err = run_check(path)
    assert (code, err) == (0, "")
    assert out.startswith(f"{path}: {summary}")
    assert out.endswith(f"digest={digest(path)})\n")
    assert out.count("\n") == 1


@pytest.mark.parametrize(
    ("name", "message"),
    [
        pytest.param(
            "invalid-unknown-key.yaml",
            ":6: workloads[0].modles: unknown key 'modles'; did you mean 'models'?",
            id="unknown_key",
        ),
        pytest.param(
            "invalid-foreign-pattern.yaml",
            ":7: workloads[0].match[1]: must start with",
            id="foreign_pattern",
        ),
        pytest.param(
            "invalid-syntax.yaml", ":4: <document>: YAML syntax error at line 4", id="syntax_error"
        ),
        pytest.param("missing.yaml", ": <document>: cannot read file", id="missing_file"),
    ],
)
def test_check_prints_the_error_with_its_line_and_exits_2(name: str, message: str) -> None:
    path = str(DATA / name)
    code, out, err = run_check(path)
    assert (code, out) == (2, "")
    assert err.startswith(f"{path}{message}")


EXPLAIN = [
    pytest.param(
        FULL,
        CHECKOUT,
        "gpt-4o",
        0,
        [
            f"identity:  {CHECKOUT}",
            f"rule:      workload 'payments-checkout' (matched by '{CHECKOUT}')",
            "model:     gpt-4o",
            "decision:  ALLOWED: model 'gpt-4o' is allowed by workload 'payments-checkout'",
            "models:    gpt-4o, gpt-4o-mini",
            "request:   secrets -> block",
            "response:  secrets -> redact",
            "mode:      enforce",
        ],
        id="allowed_model_exits_0",
    ),
    pytest.param(
        FULL,
        CHECKOUT,
        "gpt-5",
        1,
        [
            "decision:  DENIED: model 'gpt-5' is not in workload 'payments-checkout' models "
            "[gpt-4o, gpt-4o-mini]"
        ],
        id="disallowed_model_exits_1",
    ),
    pytest.param(
        FULL,
        CHECKOUT,
        None,
        0,
        ["model:     (not given)", "decision:  ALLOWED: identity matches workload"],
        id="no_model_judges_the_identity_alone",
    ),
    pytest.param(
        FULL,
        "spiffe://cluster.local/ns/research/sa/bot",
        "o3",
        0,
        [
            "rule:      workload 'research' (matched by 'spiffe://cluster.local/ns/research/*')",
            "models:    any",
            "request:   pii -> redact, prompt-injection -> audit",
            "response:  no scanners",
        ],
        id="glob_rule_names_its_pattern",
    ),
    pytest.param(
        FULL,
        "spiffe://cluster.local/ns/other/sa/x",
        "gpt-4o",
        1,
        [
            "rule:      defaultAction=deny (no workload matches)",
            "decision:  DENIED: no workload matches",
        ],
        id="unmatched_identity_falls_to_default_and_exits_1",
    ),
    pytest.param(
        FULL,
        "unauthenticated",
        "llama-3",
        0,
        ["rule:      workload 'anonymous-sandbox' (matched by 'unauthenticated')"],
        id="unauthenticated_is_a_valid_identity",
    ),
    pytest.param(
        AUDIT,
        CHECKOUT,
        "gpt-5",
        1,
        [
            "decision:  DENIED:",
            "mode:      audit (dry run: this decision is recorded, nothing is enforced)",
        ],
        id="audit_mode_says_nothing_is_enforced",
    ),
]


@pytest.mark.parametrize(("path", "identity", "model", "code", "lines"), EXPLAIN)
def test_explain_shows_the_deciding_rule_and_exits_by_decision(
    path: str, identity: str, model: str | None, code: int, lines: list[str]
) -> None:
    got, out, err = run_explain(path, identity, model)
    assert (got, err) == (code, "")
    printed = out.splitlines()
    for line in lines:
        assert any(p.startswith(line) for p in printed), f"{line!r} not in:\n{out}"


@pytest.mark.parametrize(
    ("path", "identity", "message"),
    [
        pytest.param(
            FULL,
            "spiffe://evil.example/ns/a/sa/b",
            "invalid identity 'spiffe://evil.example/ns/a/sa/b': trust domain",
            id="foreign_trust_domain",
        ),
        pytest.param(FULL, "spiffe://cluster.local/ns/a?x", "query", id="query"),
        pytest.param(FULL, "payments/checkout", "scheme must be 'spiffe://'", id="not_an_id"),
        pytest.param(FULL, "Unauthenticated", "scheme must be", id="unauthenticated_wrong_case"),
        pytest.param(
            str(DATA / "invalid-unknown-key.yaml"),
            CHECKOUT,
            "workloads[0].modles: unknown key",
            id="invalid_policy",
        ),
    ],
)
def test_explain_rejects_bad_input_with_exit_2(path: str, identity: str, message: str) -> None:
    code, out, err = run_explain(path, identity, "gpt-4o")
    assert (code, out) == (2, "")
    assert message in err
