"""`weir policy check`: every problem at once, with its line, in plain words."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from mesh.policy_cli import check

MANY_PROBLEMS = """\
trustDomain: cluster.local
defaultAction: no
mdoe: audit
identitySources: [peer-certficate]
workloads:
  - name: a
    match: ["spiffe://cluster.local/ns/a/*"]
    respons: []
    request: [{scanner: secret, action: blok}]
  - name: 3
    models: gpt-4o
"""


def _check(tmp_path: Path, text: str, strict: bool = False) -> tuple[int, str, str]:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    out, err = io.StringIO(), io.StringIO()
    code = check(str(path), out, err, strict=strict)
    return code, out.getvalue(), err.getvalue().replace(str(path), "policy.yaml")


def test_every_problem_is_reported_in_file_order_with_its_yaml_line(tmp_path: Path) -> None:
    code, out, err = _check(tmp_path, MANY_PROBLEMS)
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "policy.yaml:2: defaultAction: a boolean (false) is not allowed (expected one of: "
        "allow, deny) (YAML read an unquoted value as a boolean; quote it)",
        "policy.yaml:3: mdoe: unknown key 'mdoe'; did you mean 'mode'? (allowed here: "
        "trustDomain, defaultAction, mode, identitySources, xfcc, jwt, jwtSvid, aiHosts, "
        "budgetStore, pinStore, workloads, mcpPaths)",
        "policy.yaml:4: identitySources[0]: the string 'peer-certficate' is not allowed; "
        "did you mean 'peer-certificate'? (expected one of: peer-certificate, node-metadata, xfcc, "
        "jwt-svid)",
        "policy.yaml:8: workloads[0].respons: unknown key 'respons'; did you mean 'response'? "
        "(allowed here: name, match, models, request, response, users, requireUser, providers, "
        "upstreams, unknownApis, tools, mcp, budget)",
        "policy.yaml:9: workloads[0].request[0].scanner: the string 'secret' is not allowed; "
        "did you mean 'secrets'? (expected one of: secrets, pii, prompt-injection, exfiltration, "
        "deny-list)",
        "policy.yaml:9: workloads[0].request[0].action: the string 'blok' is not allowed; "
        "did you mean 'block'? (expected one of: block, redact, audit)",
        "policy.yaml:10: workloads[1].name: expected a string, got a number (3)",
        "policy.yaml:10: workloads[1].match: required key 'match' is missing",
        "policy.yaml:11: workloads[1].models: expected a list, got the string 'gpt-4o'",
        "policy.yaml: 9 problems",
    ]


def test_semantic_problems_are_all_reported_too(tmp_path: Path) -> None:
    code, _, err = _check(
        tmp_path,
        "trustDomain: cluster.local\n"
        "identitySources: [xfcc, xfcc]\n"
        "workloads:\n"
        "  - {name: a, match: ['spiffe://other/ns/a'], models: []}\n"
        "  - {name: a, match: ['spiffe://cluster.local/ns/b'],\n"
        "     request: [{scanner: deny-list, action: block}]}\n",
    )
    assert code == 2
    # A problem about a key the file does not have has no line; it comes first.
    assert err.splitlines() == [
        "policy.yaml: xfcc.trustedProxies: must list at least one proxy SPIFFE ID when "
        "identitySources includes xfcc",
        "policy.yaml:2: identitySources[1]: source 'xfcc' is listed twice",
        "policy.yaml:4: workloads[0].match[0]: must start with 'spiffe://cluster.local/' or be "
        "exactly 'unauthenticated'",
        "policy.yaml:4: workloads[0].models: must not be empty; omit the key to allow any model",
        "policy.yaml:5: workloads[1].name: duplicate workload name 'a' (first at workloads[0])",
        "policy.yaml:6: workloads[1].request[0].terms: a 'deny-list' needs a non-empty list of "
        "terms",
        "policy.yaml: 6 problems",
    ]


SHADOWED = """\
trustDomain: cluster.local
workloads:
  - name: payments
    match: ["spiffe://cluster.local/ns/payments/*"]
  - name: checkout
    match: ["spiffe://cluster.local/ns/payments/sa/checkout"]
"""


def test_a_shadowed_rule_is_a_warning_and_strict_makes_it_fail(tmp_path: Path) -> None:
    warning = (
        "policy.yaml:6: workloads[1].match: warning: workload 'checkout' is never reached: "
        "every identity it matches is matched first by 'payments'"
    )
    code, out, err = _check(tmp_path, SHADOWED)
    assert code == 0
    assert out.endswith(", 1 warning\n") and ": ok (2 workloads" in out
    assert err.splitlines() == [warning]
    code, out, err = _check(tmp_path, SHADOWED, strict=True)
    assert (code, out) == (2, "")
    assert err.splitlines() == [warning, "policy.yaml: 1 warning, and --strict fails the check"]


def test_a_reachable_rule_gives_no_warning_even_in_strict_mode(tmp_path: Path) -> None:
    reordered = (
        SHADOWED.replace("payments/*", "PLACEHOLDER")
        .replace("payments/sa/checkout", "payments/*")
        .replace("PLACEHOLDER", "payments/sa/checkout")
    )
    code, out, err = _check(tmp_path, reordered, strict=True)
    assert (code, err) == (0, "")
    assert "warning" not in out


@pytest.mark.parametrize("key", ["response", "request", "models", "match"])
def test_a_misspelt_workload_key_gets_a_did_you_mean(tmp_path: Path, key: str) -> None:
    typo = key[:-1] + key[-1] * 2
    text = (
        "trustDomain: cluster.local\nworkloads:\n"
        f"  - name: a\n    match: ['spiffe://cluster.local/x']\n    {typo}: []\n"
    )
    code, _, err = _check(tmp_path, text)
    assert code == 2
    assert f"policy.yaml:5: workloads[0].{typo}: unknown key '{typo}'; did you mean '{key}'?" in err
