"""Policy documents: validation errors with exact paths, matching, and decisions."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from mesh.identity import UNAUTHENTICATED
from mesh.policy import (
    Decision,
    Policy,
    PolicyError,
    ScanRule,
    WorkloadRule,
    compile_glob,
    load_policy,
    parse_policy,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "policies"

CHECKOUT = "spiffe://cluster.local/ns/payments/sa/checkout"
GW = "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"

EXAMPLE = """\
trustDomain: cluster.local
defaultAction: deny
mode: enforce
identitySources: [peer-certificate]
xfcc: {trustedProxies: ["spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"]}
workloads:
  - name: payments-checkout
    match: ["spiffe://cluster.local/ns/payments/sa/checkout"]
    models: ["gpt-4o", "gpt-4o-mini"]
    request:  [{scanner: secrets, action: block}]
    response: [{scanner: secrets, action: redact}]
  - name: research
    match: ["spiffe://cluster.local/ns/research/*"]
"""


def policy_with(workloads: str, head: str = "trustDomain: cluster.local\n") -> Policy:
    return parse_policy(head + "workloads:\n" + workloads)


# --- loading -----------------------------------------------------------------


def test_the_documented_example_loads_into_frozen_values() -> None:
    policy = parse_policy(EXAMPLE, "example.yaml")
    assert policy == Policy(
        trust_domain="cluster.local",
        default_action="deny",
        mode="enforce",
        identity_sources=("peer-certificate",),
        xfcc_trusted_proxies=(GW,),
        workloads=(
            WorkloadRule(
                name="payments-checkout",
                match=(CHECKOUT,),
                models=("gpt-4o", "gpt-4o-mini"),
                request=(ScanRule("secrets", "block"),),
                response=(ScanRule("secrets", "redact"),),
            ),
            WorkloadRule(
                name="research",
                match=("spiffe://cluster.local/ns/research/*",),
                models=None,
            ),
        ),
        source="example.yaml",
        digest=hashlib.sha256(EXAMPLE.encode()).hexdigest()[:12],
    )
    assert policy.enforcing


def test_defaults_fill_in_everything_but_the_trust_domain() -> None:
    policy = parse_policy("trustDomain: cluster.local\n")
    assert (policy.default_action, policy.mode, policy.identity_sources) == (
        "deny",
        "enforce",
        ("peer-certificate",),
    )
    assert (policy.xfcc_trusted_proxies, policy.workloads) == ((), ())
    assert policy.source == "<string>"


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        pytest.param(EXAMPLE, EXAMPLE, True, id="identical_bytes_have_the_same_digest"),
        pytest.param(EXAMPLE, EXAMPLE.encode(), True, id="str_and_bytes_have_the_same_digest"),
        pytest.param(
            EXAMPLE, EXAMPLE + "# a comment\n", False, id="any_byte_change_changes_the_digest"
        ),
    ],
)
def test_the_digest_tells_reloads_apart(
    first: str | bytes, second: str | bytes, same: bool
) -> None:
    a, b = parse_policy(first), parse_policy(second)
    assert len(a.digest) == 12
    assert (a.digest == b.digest) is same


@pytest.mark.parametrize(
    ("name", "workloads"),
    [
        pytest.param("valid-full.yaml", 3, id="full"),
        pytest.param("valid-minimal.yaml", 0, id="minimal"),
        pytest.param("valid-audit.yaml", 1, id="audit"),
    ],
)
def test_example_files_load(name: str, workloads: int) -> None:
    policy = load_policy(DATA / name)
    assert len(policy.workloads) == workloads
    assert policy.source == str(DATA / name)
    assert policy.digest == hashlib.sha256((DATA / name).read_bytes()).hexdigest()[:12]


@pytest.mark.parametrize(
    ("name", "path", "reason"),
    [
        pytest.param(
            "invalid-unknown-key.yaml", "workloads[0].modles", "unknown key", id="unknown_key"
        ),
        pytest.param(
            "invalid-foreign-pattern.yaml",
            "workloads[0].match[1]",
            "must start with 'spiffe://cluster.local/'",
            id="foreign_pattern",
        ),
        pytest.param(
            "invalid-xfcc-without-proxies.yaml",
            "xfcc.trustedProxies",
            "at least one proxy",
            id="xfcc_without_proxies",
        ),
        pytest.param("invalid-syntax.yaml", "<document>", "YAML syntax error at line", id="syntax"),
        pytest.param("does-not-exist.yaml", "<document>", "cannot read file", id="missing_file"),
    ],
)
def test_invalid_files_name_the_file_the_path_and_the_reason(
    name: str, path: str, reason: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy(DATA / name)
    err = caught.value
    assert (err.file, err.path) == (str(DATA / name), path)
    assert reason in err.reason
    assert str(err) == f"{DATA / name}: {path}: {err.reason}"


def test_a_directory_is_an_unreadable_policy(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read file"):
        load_policy(tmp_path)


# --- validation errors -------------------------------------------------------

TD = "trustDomain: cluster.local\n"
W = "workloads:\n  - name: a\n    match: ['spiffe://cluster.local/ns/a/*']\n"

INVALID = [
    pytest.param("", "<document>", "empty", id="empty_file"),
    pytest.param("# only a comment\n", "<document>", "empty", id="comment_only"),
    pytest.param(
        "- a\n- b\n", "<document>", "mapping at the top level, got a list", id="top_level_list"
    ),
    pytest.param("just text\n", "<document>", "got a string", id="top_level_string"),
    pytest.param(
        "a: [1\n", "<document>", "YAML syntax error at line 2, column 1", id="unclosed_flow_list"
    ),
    pytest.param(
        "trustDomain: a\n\tmode: x\n",
        "<document>",
        "YAML syntax error at line 2",
        id="tab_indentation",
    ),
    pytest.param(
        "---\ntrustDomain: a\n---\ntrustDomain: b\n",
        "<document>",
        "single document",
        id="two_documents",
    ),
    pytest.param("a: " + "[" * 1000, "<document>", "nested too deeply", id="deep_nesting"),
    pytest.param(
        TD + "mode: enforce\nmode: audit\n",
        "<document>",
        "duplicate key 'mode' at line 3",
        id="duplicate_top_level_key",
    ),
    pytest.param(
        TD + "workloads:\n  - {name: a, name: b, match: ['unauthenticated']}\n",
        "<document>",
        "duplicate key 'name'",
        id="duplicate_nested_key",
    ),
    pytest.param(TD + "1: x\n", "<document>", "is not a string", id="non_string_key"),
    pytest.param(b"trustDomain: caf\xe9\n", "<document>", "not UTF-8", id="not_utf8"),
    pytest.param(
        "mode: enforce\n",
        "trustDomain",
        "required key 'trustDomain' is missing",
        id="missing_trust_domain",
    ),
    pytest.param(
        "trustDomain: Cluster.Local\n",
        "trustDomain",
        "must be lowercase",
        id="uppercase_trust_domain",
    ),
    pytest.param(
        "trustDomain: 'cluster.local:80'\n", "trustDomain", "port", id="trust_domain_with_port"
    ),
    pytest.param(
        "trustDomain: 'spiffe://cluster.local'\n",
        "trustDomain",
        "not a valid trust domain",
        id="trust_domain_given_as_an_id",
    ),
    pytest.param(
        "trustDomain: 7\n",
        "trustDomain",
        "expected a string, got a number",
        id="trust_domain_number",
    ),
    pytest.param(
        TD + "trustdomain: x\n",
        "trustdomain",
        "unknown key",
        id="unknown_top_level_key_in_wrong_case",
    ),
    pytest.param(
        TD + "defaultAction: permit\n",
        "defaultAction",
        "the string 'permit' is not allowed (expected one of: allow, deny)",
        id="bad_default_action",
    ),
    pytest.param(
        TD + "defaultAction: no\n",
        "defaultAction",
        "as a boolean",
        id="yaml_boolean_default_action",
    ),
    pytest.param(TD + "mode: dry-run\n", "mode", "expected one of: enforce, audit", id="bad_mode"),
    pytest.param(
        TD + "identitySources: [peer-certificate, jwt]\n",
        "identitySources[1]",
        "expected one of: peer-certificate, node-metadata, xfcc",
        id="unknown_identity_source",
    ),
    pytest.param(
        TD + "identitySources: []\n", "identitySources", "at least one", id="no_identity_sources"
    ),
    pytest.param(
        TD + "identitySources: peer-certificate\n",
        "identitySources",
        "expected a list, got",
        id="identity_sources_not_a_list",
    ),
    pytest.param(
        TD + "identitySources: [node-metadata, node-metadata]\n",
        "identitySources[1]",
        "listed twice",
        id="repeated_identity_source",
    ),
    pytest.param(
        TD + "xfcc: {trustedproxies: []}\n",
        "xfcc.trustedproxies",
        "unknown key",
        id="unknown_xfcc_key",
    ),
    pytest.param(
        TD + "xfcc: {trustedProxies: ['spiffe://cluster.local/gw?x']}\n",
        "xfcc.trustedProxies[0]",
        "query",
        id="trusted_proxy_with_query",
    ),
    pytest.param(
        TD + "xfcc: {trustedProxies: ['spiffe://cluster.local']}\n",
        "xfcc.trustedProxies[0]",
        "needs a path",
        id="trusted_proxy_without_path",
    ),
    pytest.param(
        TD + "identitySources: [xfcc]\nxfcc: {trustedProxies: []}\n",
        "xfcc.trustedProxies",
        "at least one proxy",
        id="xfcc_source_without_proxies",
    ),
    pytest.param(
        TD + "workloads: {name: a}\n",
        "workloads",
        "expected a list, got",
        id="workloads_not_a_list",
    ),
    pytest.param(
        TD + "workloads: [{match: ['unauthenticated']}]\n",
        "workloads[0].name",
        "is missing",
        id="workload_without_name",
    ),
    pytest.param(
        TD + "workloads: [{name: '', match: ['unauthenticated']}]\n",
        "workloads[0].name",
        "must not be empty",
        id="empty_workload_name",
    ),
    pytest.param(
        TD + "workloads: [{name: a, match: ['unauthenticated']},"
        " {name: a, match: ['unauthenticated']}]\n",
        "workloads[1].name",
        "duplicate workload name 'a' (first at workloads[0])",
        id="duplicate_workload_name",
    ),
    pytest.param(
        TD + "workloads: [{name: a}]\n",
        "workloads[0].match",
        "is missing",
        id="workload_without_match",
    ),
    pytest.param(
        TD + "workloads: [{name: a, match: []}]\n",
        "workloads[0].match",
        "at least one",
        id="empty_match",
    ),
    pytest.param(
        TD + "workloads: [{name: a, match: 'unauthenticated'}]\n",
        "workloads[0].match",
        "expected a list, got",
        id="match_not_a_list",
    ),
    pytest.param(
        TD + "workloads: [{name: a, match: ['spiffe://other.td/ns/a']}]\n",
        "workloads[0].match[0]",
        "must start with 'spiffe://cluster.local/'",
        id="pattern_in_foreign_trust_domain",
    ),
    pytest.param(
        TD + "workloads: [{name: a, match: ['spiffe://cluster.local.evil/*']}]\n",
        "workloads[0].match[0]",
        "must start with",
        id="pattern_with_suffixed_domain",
    ),
    pytest.param(
        TD + "workloads: [{name: a, match: ['spiffe://*']}]\n",
        "workloads[0].match[0]",
        "must start with",
        id="pattern_with_glob_domain",
    ),
    pytest.param(
        TD + "workloads: [{name: a, match: ['spiffe://cluster.local/']}]\n",
        "workloads[0].match[0]",
        "needs a path",
        id="pattern_without_path",
    ),
    pytest.param(
        TD + "workloads: [{name: a, match: ['Unauthenticated']}]\n",
        "workloads[0].match[0]",
        "exactly 'unauthenticated'",
        id="unauthenticated_in_wrong_case",
    ),
    pytest.param(
        TD + "workloads: [{name: a, match: ['spiffe://cluster.local/ns/a b']}]\n",
        "workloads[0].match[0]",
        "character ' '",
        id="pattern_with_space",
    ),
    pytest.param(
        TD + "workloads: [{name: a, match: ['unauthenticated'], models: []}]\n",
        "workloads[0].models",
        "omit the key",
        id="empty_models",
    ),
    pytest.param(
        TD + "workloads: [{name: a, match: ['unauthenticated'], models: [gpt, 4]}]\n",
        "workloads[0].models[1]",
        "expected a string, got a number",
        id="model_not_a_string",
    ),
    pytest.param(
        TD + "workloads: [{name: a, match: ['unauthenticated'], models: [gpt, '']}]\n",
        "workloads[0].models[1]",
        "must not be empty",
        id="empty_model",
    ),
    pytest.param(
        TD + W + "    models: gpt-4o\n",
        "workloads[0].models",
        "expected a list, got",
        id="models_not_a_list",
    ),
    pytest.param(
        TD + W + "    modles: [gpt-4o]\n",
        "workloads[0].modles",
        "unknown key",
        id="misspelt_models",
    ),
    pytest.param(
        TD + W + "    request: [{scanner: secret, action: block}]\n",
        "workloads[0].request[0].scanner",
        "did you mean 'secrets'? (expected one of: secrets, pii, prompt-injection, deny-list)",
        id="unknown_scanner",
    ),
    pytest.param(
        TD + W + "    response: [{scanner: pii, action: drop}]\n",
        "workloads[0].response[0].action",
        "expected one of: block, redact, audit",
        id="unknown_action",
    ),
    pytest.param(
        TD + W + "    response: [{scanner: pii}]\n",
        "workloads[0].response[0].action",
        "is missing",
        id="scan_rule_without_action",
    ),
    pytest.param(
        TD + W + "    request: [{scanner: pii, action: block, level: 3}]\n",
        "workloads[0].request[0].level",
        "unknown key",
        id="unknown_scan_rule_key",
    ),
    pytest.param(
        TD + W + "    request: [{scanner: pii, action: block}, {scanner: pii, action: redact}]\n",
        "workloads[0].request[1].scanner",
        "listed twice",
        id="repeated_scanner",
    ),
    pytest.param(
        TD + W + "  - name: b\n    match: ['unauthenticated']\n    models: [x]\n    bogus: 1\n",
        "workloads[1].bogus",
        "unknown key",
        id="unknown_key_in_second_workload",
    ),
    pytest.param(
        TD + "mode: x\ndefaultAction: y\n",
        "defaultAction",
        "(and 1 more problem)",
        id="several_problems_are_counted",
    ),
]


@pytest.mark.parametrize(("text", "path", "reason"), INVALID)
def test_invalid_documents_name_the_path_and_the_reason(
    text: str | bytes, path: str, reason: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "policy.yaml")
    err = caught.value
    assert err.file == "policy.yaml"
    assert err.path == path
    assert reason in err.reason
    assert str(err) == f"policy.yaml: {path}: {err.reason}"


def test_an_oversized_document_is_rejected() -> None:
    with pytest.raises(PolicyError, match="larger than"):
        parse_policy("trustDomain: cluster.local\n" + "#" * (1024 * 1024))


# --- glob semantics ------------------------------------------------------------

GLOBS = [
    pytest.param("gpt-4o", "gpt-4o", True, id="literal_matches_itself"),
    pytest.param("gpt-4o", "gpt-4o-mini", False, id="literal_is_anchored_at_the_end"),
    pytest.param("gpt-4o", "xgpt-4o", False, id="literal_is_anchored_at_the_start"),
    pytest.param("gpt-4o*", "gpt-4o-mini", True, id="star_matches_a_suffix"),
    pytest.param("gpt-4o*", "gpt-4o", True, id="star_matches_nothing"),
    pytest.param("*-mini", "gpt-4o-mini", True, id="star_matches_a_prefix"),
    pytest.param("a*b*c", "aXXbYYc", True, id="several_stars"),
    pytest.param("ns/*", "ns/a/sa/b", True, id="star_spans_slashes"),
    pytest.param("gpt-4.1", "gpt-4x1", False, id="dot_is_literal"),
    pytest.param("gpt-?", "gpt-4", False, id="question_mark_is_literal"),
    pytest.param("gpt-[45]", "gpt-4", False, id="brackets_are_literal"),
    pytest.param("gpt-[45]", "gpt-[45]", True, id="brackets_match_themselves"),
    pytest.param("a+b", "aab", False, id="plus_is_literal"),
    pytest.param("*", "", True, id="lone_star_matches_empty"),
    pytest.param("*", "multi\nline", True, id="star_matches_newlines"),
]


@pytest.mark.parametrize(("pattern", "text", "matches"), GLOBS)
def test_globs_treat_only_the_star_as_special(pattern: str, text: str, matches: bool) -> None:
    assert (compile_glob(pattern).fullmatch(text) is not None) is matches


# --- matching and decisions -------------------------------------------------------

ORDERED = policy_with(
    """\
  - name: checkout-exact
    match: ["spiffe://cluster.local/ns/payments/sa/checkout"]
    models: ["gpt-4o", "gpt-4o-mini"]
    request: [{scanner: secrets, action: block}]
    response: [{scanner: secrets, action: redact}, {scanner: pii, action: audit}]
  - name: payments-any
    match: ["spiffe://cluster.local/ns/payments/*"]
    models: ["claude-*"]
  - name: everything-else
    match: ["spiffe://cluster.local/*"]
  - name: anonymous
    match: ["unauthenticated"]
    models: ["llama-*"]
"""
)

WORKLOAD_FOR = [
    pytest.param(CHECKOUT, "checkout-exact", id="exact_pattern_listed_first_wins"),
    pytest.param(
        "spiffe://cluster.local/ns/payments/sa/refunds",
        "payments-any",
        id="namespace_glob_catches_other_accounts",
    ),
    pytest.param(
        "spiffe://cluster.local/ns/payments/sa/checkout/v2",
        "payments-any",
        id="exact_pattern_does_not_match_a_longer_id",
    ),
    pytest.param(
        "spiffe://cluster.local/ns/research/sa/bot",
        "everything-else",
        id="domain_wide_glob_spans_slashes",
    ),
    pytest.param(UNAUTHENTICATED, "anonymous", id="unauthenticated_matches_only_the_literal"),
    pytest.param(
        "spiffe://other.td/ns/payments/sa/checkout", None, id="foreign_trust_domain_matches_nothing"
    ),
    pytest.param(
        "spiffe://cluster.local.evil/ns/payments/sa/checkout",
        None,
        id="suffixed_trust_domain_matches_nothing",
    ),
]


@pytest.mark.parametrize(("principal", "workload"), WORKLOAD_FOR)
def test_the_first_matching_workload_wins(principal: str, workload: str | None) -> None:
    found = ORDERED.workload_for(principal)
    assert (found.name if found else None) == workload


def test_a_star_glob_never_matches_the_unauthenticated_principal() -> None:
    policy = policy_with("  - name: all\n    match: ['spiffe://cluster.local/*']\n")
    assert policy.workload_for(UNAUTHENTICATED) is None
    assert not policy.workloads[0].matches_identity(UNAUTHENTICATED)


DECISIONS = [
    pytest.param(
        CHECKOUT,
        "gpt-4o",
        True,
        "checkout-exact",
        "model 'gpt-4o' is allowed by workload 'checkout-exact' (pattern 'gpt-4o')",
        id="listed_model_is_allowed",
    ),
    pytest.param(
        CHECKOUT,
        "gpt-5",
        False,
        "checkout-exact",
        "model 'gpt-5' is not in workload 'checkout-exact' models [gpt-4o, gpt-4o-mini]",
        id="unlisted_model_is_denied",
    ),
    pytest.param(
        CHECKOUT,
        "claude-3",
        False,
        "checkout-exact",
        "model 'claude-3' is not in workload 'checkout-exact' models [gpt-4o, gpt-4o-mini]",
        id="a_later_workload_does_not_rescue_a_denied_model",
    ),
    pytest.param(
        CHECKOUT,
        None,
        True,
        "checkout-exact",
        "identity matches workload 'checkout-exact'; model not yet known",
        id="unknown_model_is_allowed_in_the_header_phase",
    ),
    pytest.param(
        "spiffe://cluster.local/ns/payments/sa/refunds",
        "claude-3-opus",
        True,
        "payments-any",
        "model 'claude-3-opus' is allowed by workload 'payments-any' (pattern 'claude-*')",
        id="model_glob_allows",
    ),
    pytest.param(
        "spiffe://cluster.local/ns/research/sa/bot",
        "anything",
        True,
        "everything-else",
        "workload 'everything-else' allows any model",
        id="absent_models_means_any_model",
    ),
    pytest.param(
        UNAUTHENTICATED,
        "gpt-4o",
        False,
        "anonymous",
        "model 'gpt-4o' is not in workload 'anonymous' models [llama-*]",
        id="unauthenticated_gets_only_its_literal_rule",
    ),
    pytest.param(
        "spiffe://other.td/ns/a/sa/b",
        "gpt-4o",
        False,
        "defaultAction",
        "no workload matches 'spiffe://other.td/ns/a/sa/b'; defaultAction is deny",
        id="no_match_falls_to_default_deny",
    ),
    pytest.param(
        "spiffe://other.td/ns/a/sa/b",
        None,
        False,
        "defaultAction",
        "no workload matches 'spiffe://other.td/ns/a/sa/b'; defaultAction is deny",
        id="no_match_is_denied_already_in_the_header_phase",
    ),
]


@pytest.mark.parametrize(("principal", "model", "allowed", "rule", "reason"), DECISIONS)
def test_decisions_follow_the_first_matching_workload(
    principal: str, model: str | None, allowed: bool, rule: str, reason: str
) -> None:
    decision = ORDERED.decide(principal, model)
    assert decision == Decision(
        allowed=allowed, rule=rule, reason=reason, workload=ORDERED.workload_for(principal)
    )


@pytest.mark.parametrize(
    ("default_action", "allowed"),
    [pytest.param("allow", True, id="allow"), pytest.param("deny", False, id="deny")],
)
def test_default_action_decides_unmatched_identities(default_action: str, allowed: bool) -> None:
    policy = parse_policy(f"trustDomain: cluster.local\ndefaultAction: {default_action}\n")
    decision = policy.decide(CHECKOUT, "gpt-4o")
    assert (decision.allowed, decision.rule, decision.workload) == (allowed, "defaultAction", None)


@pytest.mark.parametrize(
    ("mode", "enforcing"),
    [pytest.param("enforce", True, id="enforce"), pytest.param("audit", False, id="audit")],
)
def test_audit_mode_changes_enforcement_but_not_the_decision(mode: str, enforcing: bool) -> None:
    policy = parse_policy(f"trustDomain: cluster.local\nmode: {mode}\n")
    assert policy.enforcing is enforcing
    assert policy.decide(CHECKOUT, "gpt-4o").allowed is False


@pytest.mark.parametrize(
    ("principal", "request_rules", "response_rules"),
    [
        pytest.param(
            CHECKOUT,
            (ScanRule("secrets", "block"),),
            (ScanRule("secrets", "redact"), ScanRule("pii", "audit")),
            id="matched_workload_rules_in_order",
        ),
        pytest.param(
            "spiffe://cluster.local/ns/payments/sa/refunds", (), (), id="workload_without_scanners"
        ),
        pytest.param("spiffe://other.td/ns/a/sa/b", (), (), id="no_workload_no_rules"),
    ],
)
def test_scan_rules_come_from_the_matched_workload(
    principal: str, request_rules: tuple[ScanRule, ...], response_rules: tuple[ScanRule, ...]
) -> None:
    workload = ORDERED.workload_for(principal)
    assert (workload.request if workload else ()) == request_rules
    assert (workload.response if workload else ()) == response_rules


def test_the_matching_pattern_is_reported_for_explanations() -> None:
    rule = ORDERED.workloads[1]
    assert rule.matching_pattern("spiffe://cluster.local/ns/payments/sa/x") == (
        "spiffe://cluster.local/ns/payments/*"
    )
    assert rule.matching_model_pattern("claude-3") == "claude-*"
    assert rule.matching_model_pattern("gpt-4o") is None


def test_loaded_values_are_immutable() -> None:
    with pytest.raises(AttributeError):
        ORDERED.mode = "audit"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        ORDERED.workloads[0].name = "x"  # type: ignore[misc]


DENY_BASE = """
trustDomain: cluster.local
workloads:
  - name: w
    match: ["spiffe://cluster.local/ns/a/*"]
    response: [{rule}]
"""


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ("{scanner: deny-list, action: block}", "needs a non-empty list of terms"),
        ("{scanner: deny-list, action: block, terms: []}", "needs a non-empty list of terms"),
        ('{scanner: deny-list, action: block, terms: ["ok", "  "]}', "must not be empty"),
        (f'{{scanner: deny-list, action: block, terms: ["{"x" * 201}"]}}', "longer than 200"),
        ('{scanner: secrets, action: block, terms: ["x"]}', "only a 'deny-list' scanner"),
    ],
    ids=["missing-terms", "empty-terms", "blank-term", "long-term", "terms-on-secrets"],
)
def test_deny_list_terms_are_validated_with_their_path(rule: str, reason: str) -> None:
    with pytest.raises(PolicyError) as raised:
        parse_policy(DENY_BASE.format(rule=rule), "p.yaml")
    assert raised.value.path == "workloads[0].response[0].terms"
    assert reason in raised.value.reason


def test_a_deny_list_keeps_its_terms() -> None:
    policy = parse_policy(
        DENY_BASE.format(rule='{scanner: deny-list, action: redact, terms: ["a b", "c"]}')
    )
    [rule] = policy.workloads[0].response
    assert rule.terms == ("a b", "c")
