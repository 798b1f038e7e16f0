"""The policy keys of identity depth: `jwt`, `jwtSvid`, `users`, `requireUser`, `providers`,
`upstreams`. A bad value is a load error with file, path and reason; `weir policy check`
reports it and exits 2."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from mesh.policy import PolicyError, load_policy
from mesh.policy_cli import check
from mesh.sandbox_idp import SandboxIdp

ISSUER = "https://idp.example.com"


@pytest.fixture
def jwks_file(tmp_path: Path) -> Path:
    path = tmp_path / "jwks.json"
    path.write_bytes(SandboxIdp.create(ISSUER).jwks())
    return path


def policy_text(jwt_extra: str = "", algorithms: str = "[RS256]", jwks: str = "{file: jwks.json}",
                workload_extra: str = "", top_extra: str = "") -> str:
    return f"""\
trustDomain: cluster.local
{top_extra}jwt:
  issuers:
    - issuer: {ISSUER}
      audiences: [weir]
      jwks: {jwks}
      algorithms: {algorithms}
{jwt_extra}workloads:
  - name: finance-assistant
    match: ["spiffe://cluster.local/ns/finance/sa/assistant"]
{workload_extra}"""


def load(tmp_path: Path, text: str):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return load_policy(path)


def test_a_full_identity_depth_policy_loads(tmp_path: Path, jwks_file: Path) -> None:
    policy = load(tmp_path, policy_text(
        jwt_extra="  header: x-user-token\n  groupsClaim: roles\n",
        workload_extra=(
            '    users: ["group:finance-analysts", "sub:*@corp.example"]\n'
            "    requireUser: true\n"
            "    providers: [openai]\n"
            '    upstreams: ["api.openai.com", "*.openai.azure.com", "vllm.models.svc:8000"]\n'
        ),
    ))
    assert policy.user_tokens is not None
    assert policy.user_tokens.header == "x-user-token"
    assert policy.user_tokens.groups_claim == "roles"
    issuer = policy.user_tokens.issuers[0]
    assert issuer.jwks.file == str(jwks_file)  # relative to the policy file
    assert issuer.jwks.initial is not None and issuer.jwks.initial.get("key-1") is not None
    rule = policy.workloads[0]
    assert rule.require_user and rule.users is not None and len(rule.users) == 2
    assert rule.destinations.providers == ("openai",)


@pytest.mark.parametrize(
    ("kwargs", "path", "reason"),
    [
        ({"algorithms": "[HS256]"}, "jwt.issuers[0].algorithms[0]", "'HS256' is not allowed"),
        ({"algorithms": "[none]"}, "jwt.issuers[0].algorithms[0]", "'none' is not allowed"),
        ({"algorithms": "[RS257]"}, "jwt.issuers[0].algorithms[0]", "unknown algorithm 'RS257'"),
        ({"algorithms": "[ES256]"}, "jwt.issuers[0].algorithms",
         "no key in the JWKS file fits"),
        ({"jwks": "{file: missing.json}"}, "jwt.issuers[0].jwks.file", "cannot read JWKS file"),
        ({"jwks": "{}"}, "jwt.issuers[0].jwks", "exactly one of 'file' and 'uri'"),
        ({"jwks": "{uri: http://idp/jwks}"}, "jwt.issuers[0].jwks.uri", "https://"),
        ({"jwks": "{uri: 'https://idp/jwks', caFile: nope.pem}"},
         "jwt.issuers[0].jwks.caFile", "cannot use CA file"),
        ({"jwt_extra": "  header: 'bad header'\n"}, "jwt.header", "not a usable HTTP header"),
        ({"jwt_extra": "  clockSkewSeconds: -1\n"}, "jwt.clockSkewSeconds", "greater than"),
        ({"workload_extra": '    users: ["team:finance"]\n'}, "workloads[0].users[0]",
         "must start with 'group:' or 'sub:'"),
        ({"workload_extra": '    users: ["group:"]\n'}, "workloads[0].users[0]", "needs a value"),
        ({"workload_extra": "    providers: [openia]\n"}, "workloads[0].providers[0]",
         "unknown provider 'openia'"),
        ({"workload_extra": '    upstreams: ["api.openai.com/v1"]\n'},
         "workloads[0].upstreams[0]", "cannot appear in a request authority"),
        ({"workload_extra": '    upstreams: ["**.openai.com"]\n'},
         "workloads[0].upstreams[0]", "'**' is not a pattern"),
        ({"workload_extra": "    upstreams: []\n"}, "workloads[0].upstreams", "must not be empty"),
        ({"top_extra": "identitySources: [jwt-svid]\n"}, "jwtSvid", "required when"),
    ],
)
def test_a_bad_value_is_refused_with_its_path_and_reason(
    tmp_path: Path, jwks_file: Path, kwargs: dict[str, str], path: str, reason: str
) -> None:
    with pytest.raises(PolicyError) as raised:
        load(tmp_path, policy_text(**kwargs))
    assert raised.value.path == path
    assert reason in raised.value.reason


def test_end_user_rules_without_a_jwt_section_are_refused(tmp_path: Path) -> None:
    text = """\
trustDomain: cluster.local
workloads:
  - name: w
    match: ["spiffe://cluster.local/ns/a/sa/b"]
    requireUser: true
"""
    with pytest.raises(PolicyError) as raised:
        load(tmp_path, text)
    assert raised.value.path == "workloads[0].requireUser"
    assert "need a 'jwt' section" in raised.value.reason


def test_weir_policy_check_names_file_path_and_reason(tmp_path: Path, jwks_file: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text(algorithms="[HS256]"))
    out, err = io.StringIO(), io.StringIO()
    assert check(str(path), out, err) == 2
    # file:line: path: reason
    assert re.match(
        rf"{re.escape(str(path))}:\d+: jwt\.issuers\[0\]\.algorithms\[0\]: 'HS256' is not allowed",
        err.getvalue(),
    ), err.getvalue()


def test_a_jwt_svid_section_needs_the_source_and_its_own_header(
    tmp_path: Path, jwks_file: Path
) -> None:
    svid = "jwtSvid: {audiences: [weir], jwks: {file: jwks.json}, header: authorization}\n"
    with pytest.raises(PolicyError) as raised:
        load(tmp_path, policy_text(top_extra="identitySources: [jwt-svid]\n" + svid))
    assert raised.value.path == "jwtSvid.header"
    with pytest.raises(PolicyError) as raised:
        load(tmp_path, policy_text(top_extra=svid))
    assert raised.value.path == "jwtSvid" and "does not include jwt-svid" in raised.value.reason


def _explain(policy: Path, claims: dict[str, object] | None, tmp_path: Path) -> tuple[int, str]:
    import json

    from mesh.policy_cli import explain

    claims_path = None
    if claims is not None:
        claims_path = tmp_path / "claims.json"
        claims_path.write_text(json.dumps(claims))
    out, err = io.StringIO(), io.StringIO()
    code = explain(str(policy), "spiffe://cluster.local/ns/finance/sa/assistant", "gpt-4o",
                   out, err, user_claims=str(claims_path) if claims_path else None)
    return code, out.getvalue() + err.getvalue()


@pytest.mark.parametrize(
    ("claims", "code", "expected"),
    [
        ({"sub": "bob", "groups": ["finance-analysts"]}, 0, "admitted by workload"),
        ({"sub": "bob", "groups": ["sales"]}, 1, "end user is not in workload"),
        (None, 1, "requires an end-user token"),
        ({"groups": ["finance-analysts"]}, 2, "non-empty string 'sub'"),
    ],
    ids=["right-group", "wrong-group", "no-claims", "claims-without-sub"],
)
def test_policy_explain_takes_user_claims(
    tmp_path: Path, jwks_file: Path, claims: dict[str, object] | None, code: int, expected: str
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text(workload_extra=(
        '    users: ["group:finance-analysts"]\n    requireUser: true\n'
        "    upstreams: [api.openai.com]\n"
    )))
    got, text = _explain(path, claims, tmp_path)
    assert (got, expected in text) == (code, True), text
    if code != 2:
        assert "users:     group:finance-analysts (required)" in text
        assert "upstreams: api.openai.com" in text
