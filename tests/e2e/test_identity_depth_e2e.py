"""End users, JWT-SVIDs and destination allow-lists, behind real Envoy with mTLS.

The end-user issuers' keys come from a real local HTTPS JWKS server (TLS from the
sandbox CA); the JWT-SVID keys from a JWKS file. Every refusal is checked from
the official SDK's side (its typed error), and the upstream's log shows it saw nothing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import openai
import pytest
from jwks_server import JwksServer
from weir_admin import eventually, get, metric_matching

from mesh.sandbox import SANDBOX_WORKLOADS, TRUST_DOMAIN, MeshSandbox, free_port
from mesh.sandbox_idp import SandboxIdp, hs256_with_public_key, unsigned_token

PROMPT = [{"role": "user", "content": "hello"}]
CHECKOUT, NOTEBOOK, ETL = (SANDBOX_WORKLOADS[n] for n in ("checkout", "notebook", "etl"))
USER_PATH, ROTATING_PATH = "/idp/jwks.json", "/rotating/jwks.json"
FLOOD_PATH = "/flood/jwks.json"
ALICE = "alice@corp.example"  # a raw claim that must never reach a log line


@dataclass
class World:
    mesh: MeshSandbox
    jwks: JwksServer
    idp: SandboxIdp
    rotating: SandboxIdp
    flood: SandboxIdp
    svid: SandboxIdp
    tokens: list[str] = field(default_factory=list)  # every token sent, for the log check

    def user_token(self, idp: SandboxIdp | None = None, **claims: object) -> str:
        idp = idp or self.idp
        token = idp.token(idp.claims(ALICE, "weir", **claims))
        self.tokens.append(token)
        return token

    def client(self, workload: str | None, *headers: tuple[str, str]) -> openai.OpenAI:
        self.tokens.extend(value for _, value in headers)
        return self.mesh.openai_client(workload, default_headers=dict(headers))


def _policy(port: int, user_issuer: str, rotating_issuer: str, flood_issuer: str) -> str:
    return f"""
trustDomain: {TRUST_DOMAIN}
defaultAction: deny
identitySources: [peer-certificate, jwt-svid]
jwt:
  header: x-user-token
  issuers:
    - issuer: "{user_issuer}"
      audiences: [weir]
      jwks: {{uri: "https://127.0.0.1:{port}{USER_PATH}", caFile: pki/ca.pem}}
      algorithms: [RS256]
    - issuer: "{rotating_issuer}"
      audiences: [weir]
      jwks: {{uri: "https://127.0.0.1:{port}{ROTATING_PATH}", caFile: pki/ca.pem}}
      algorithms: [RS256]
    - issuer: "{flood_issuer}"
      audiences: [weir]
      jwks: {{uri: "https://127.0.0.1:{port}{FLOOD_PATH}", caFile: pki/ca.pem}}
      algorithms: [RS256]
jwtSvid: {{audiences: [weir], jwks: {{file: svid-jwks.json}}, algorithms: [ES256]}}
workloads:
  - name: payments-checkout
    match: ["{CHECKOUT}"]
    users: ["group:finance-analysts"]
    requireUser: true
    providers: [openai]
    upstreams: ["127.0.0.1:*", "localhost"]
    request: [{{scanner: secrets, action: audit}}]
  - name: research
    match: ["{NOTEBOOK}"]
    upstreams: ["api.openai.com", "*.openai.azure.com"]
  - name: batch-etl
    match: ["{ETL}"]
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    workdir = tmp_path_factory.mktemp("identity-depth")
    port = free_port()
    idp = SandboxIdp.create(f"https://127.0.0.1:{port}/idp")
    rotating = SandboxIdp.create(f"https://127.0.0.1:{port}/rotating", kid="rot-1")
    flood = SandboxIdp.create(f"https://127.0.0.1:{port}/flood", kid="flood-1")
    svid = SandboxIdp.create("https://spire.cluster.local", kid="svid-1", alg="ES256")
    (workdir / "svid-jwks.json").write_bytes(svid.jwks())
    mesh = MeshSandbox(
        workdir,
        policy_text=_policy(port, idp.issuer, rotating.issuer, flood.issuer),
        require_client_certificate=False,
    )
    with mesh:
        assert mesh.pki is not None
        server = JwksServer(port, mesh.pki.server_cert, mesh.pki.server_key)
        server.documents[USER_PATH] = idp.jwks
        server.documents[ROTATING_PATH] = rotating.jwks
        server.documents[FLOOD_PATH] = flood.jwks
        with server:
            yield World(mesh, server, idp, rotating, flood, svid)


@pytest.fixture
def w(world: World) -> World:
    world.mesh.clear_upstream_requests()
    return world


def test_an_allowed_user_in_the_right_group_passes(w: World) -> None:
    token = w.user_token(groups=["finance-analysts"])
    client = w.client("checkout", ("x-user-token", token))
    assert client.chat.completions.create(model="gpt-4o", messages=PROMPT).choices
    seen = w.mesh.upstream_requests()
    assert len(seen) == 1
    # The user's token stays with Weir: the LLM provider never receives it.
    assert "x-user-token" not in {k.lower() for k in seen[0]["headers"]}


def test_a_user_in_the_wrong_group_gets_a_403_naming_the_rule(w: World) -> None:
    client = w.client("checkout", ("x-user-token", w.user_token(groups=["sales"])))
    with pytest.raises(openai.PermissionDeniedError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=PROMPT)
    assert "not in workload 'payments-checkout' users [group:finance-analysts]" in (
        raised.value.message
    )
    assert w.mesh.upstream_requests() == []


def test_require_user_without_a_token_gets_a_401(w: World) -> None:
    with pytest.raises(openai.AuthenticationError) as raised:
        w.client("checkout").chat.completions.create(model="gpt-4o", messages=PROMPT)
    assert "requires an end-user token" in raised.value.message
    assert w.mesh.upstream_requests() == []


def _bad_tokens(w: World) -> dict[str, tuple[str, str]]:
    idp = w.idp
    good = idp.claims(ALICE, "weir", groups=["finance-analysts"])
    stranger = SandboxIdp.create("https://evil.example.com")
    return {
        "expired": (
            idp.token({**good, "exp": int(time.time()) - 120}), "token has expired"
        ),
        "alg-none": (unsigned_token(good), "algorithm 'none' is not allowed"),
        "hs256-with-rsa-public-key": (
            hs256_with_public_key(good, idp.keys[0]), "algorithm 'HS256' is not allowed"
        ),
        "unknown-kid": (idp.token(good, kid="forged-kid"), "'kid' is not a key of its issuer"),
        "wrong-aud": (idp.token({**good, "aud": "another-service"}), "audience is not accepted"),
        "wrong-issuer": (
            stranger.token({**good, "iss": stranger.issuer}), "token issuer is not trusted"
        ),
        "other-issuers-key": (w.rotating.token(good, kid="key-1"), "signature does not verify"),
    }


@pytest.mark.parametrize(
    "case",
    ["expired", "alg-none", "hs256-with-rsa-public-key", "unknown-kid", "wrong-aud",
     "wrong-issuer", "other-issuers-key"],
)
def test_a_bad_user_token_gets_a_401_naming_why_and_the_upstream_sees_nothing(
    w: World, case: str
) -> None:
    token, reason = _bad_tokens(w)[case]
    client = w.client("checkout", ("x-user-token", token))
    with pytest.raises(openai.AuthenticationError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=PROMPT)
    assert "end-user token refused: " in raised.value.message
    assert reason in raised.value.message
    assert token not in raised.value.message and token.split(".")[1] not in str(raised.value.body)
    assert w.mesh.upstream_requests() == []


def test_jwks_rotation_and_a_flood_of_unknown_kids(w: World) -> None:
    rotating = w.rotating
    client = w.client("checkout")

    def call(token: str) -> None:
        client.with_options(default_headers={"x-user-token": token}).chat.completions.create(
            model="gpt-4o", messages=PROMPT
        )

    call(w.user_token(rotating, groups=["finance-analysts"]))
    assert w.jwks.count(ROTATING_PATH) == 1  # the first use fetched the key set

    new_key = rotating.rotate("rot-2")
    token = rotating.token(rotating.claims(ALICE, "weir", groups=["finance-analysts"]), new_key)
    w.tokens.append(token)
    call(token)  # the new kid is picked up after one refresh
    assert w.jwks.count(ROTATING_PATH) == 2

    # A third issuer, fetched once as it is first used: 1,000 forged kids through Envoy,
    # 16 at a time. Each is a 401; the first forces one refresh, the rest none.
    flood = w.flood
    call(w.user_token(flood, groups=["finance-analysts"]))
    before = w.jwks.count(FLOOD_PATH)
    assert before == 1
    claims = flood.claims(ALICE, "weir", groups=["finance-analysts"])
    forged = [flood.token(claims, kid=f"forged-{i}") for i in range(1000)]
    w.tokens.extend(forged)

    def send(token: str) -> int:
        try:
            call(token)
        except openai.APIStatusError as exc:
            return exc.status_code
        return 200

    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(send, forged))
    elapsed = time.monotonic() - started
    fetches = w.jwks.count(FLOOD_PATH) - before
    assert statuses == [401] * 1000
    assert 1 <= fetches <= 1 + int(elapsed // 30), (fetches, elapsed)
    print(f"\n1,000 unknown kids in {elapsed:.1f} s caused {fetches} JWKS fetch(es)")
    source = re.escape(w.jwks.url(ROTATING_PATH))
    ok = metric_matching(w.mesh, rf'weir_jwks_fetches_total{{result="ok",source="{source}"}}')
    assert ok == w.jwks.count(ROTATING_PATH)
    assert w.mesh.upstream_requests() == [] or all(
        "forged" not in str(r) for r in w.mesh.upstream_requests()
    )


def test_a_jwt_svid_identifies_a_workload_without_a_client_certificate(w: World) -> None:
    svid = w.svid.token(w.svid.claims(ETL, "weir"))
    client = w.client(None, ("x-jwt-svid", svid))
    assert client.chat.completions.create(model="gpt-4o", messages=PROMPT).choices
    assert len(w.mesh.upstream_requests()) == 1
    with pytest.raises(openai.PermissionDeniedError) as raised:
        w.client(None).chat.completions.create(model="gpt-4o", messages=PROMPT)
    assert "unauthenticated" in raised.value.message


def test_a_forged_jwt_svid_gets_a_401(w: World) -> None:
    forged = w.idp.token(w.idp.claims(ETL, "weir"))  # not the trust domain's key
    with pytest.raises(openai.AuthenticationError) as raised:
        w.client(None, ("x-jwt-svid", forged)).chat.completions.create(
            model="gpt-4o", messages=PROMPT
        )
    assert "JWT-SVID refused" in raised.value.message
    assert w.mesh.upstream_requests() == []


def test_a_forbidden_upstream_authority_gets_a_403(w: World) -> None:
    with pytest.raises(openai.PermissionDeniedError) as raised:
        w.client("notebook").chat.completions.create(model="gpt-4o", messages=PROMPT)
    assert re.search(
        r"upstream '127\.0\.0\.1:\d+' is not in workload 'research' upstreams", raised.value.message
    )
    assert w.mesh.upstream_requests() == []


def test_the_inventory_and_metrics_carry_the_user_as_a_keyed_hash(w: World) -> None:
    import json

    status, body = get(w.mesh.weir_admin_url("/inventory"))
    assert status == 200
    inventory = json.loads(body)
    checkout = next(e for e in inventory["workloads"] if e["identity"] == CHECKOUT)
    assert checkout["endUsers"] and all(u.startswith("hmac-sha256:") for u in checkout["endUsers"])
    metrics = get(w.mesh.weir_admin_url("/metrics"))[1]
    assert 'weir_end_user_requests_total{decision="allow"' in metrics
    assert 'weir_token_rejections_total{reason="expired",token="user"}' in metrics
    assert ALICE not in str(inventory) and ALICE not in metrics


def test_an_audit_record_carries_the_user_as_a_keyed_hash(w: World) -> None:
    client = w.client("checkout", ("x-user-token", w.user_token(groups=["finance-analysts"])))
    prompt = [{"role": "user", "content": "rotate AKIAQ3EGUKZW5XYT7M2P please"}]
    assert client.chat.completions.create(model="gpt-4o", messages=prompt).choices

    def audit_lines() -> list[str]:
        return [line for line in w.mesh.weir_log().splitlines() if "weir.audit" in line]

    assert eventually(lambda: any('"user": "hmac-sha256:' in line for line in audit_lines()))


def test_no_token_or_raw_claim_reaches_any_log_line(w: World) -> None:
    # Runs last in this module: every token above has been sent by now.
    assert len(w.tokens) > 1000
    logs = {
        name: (w.mesh.workdir / name).read_text(errors="replace")
        for name in ("weir.log", "envoy.log")
    }
    assert '"user": "hmac-sha256:' in logs["weir.log"]  # the decision log did record users
    for name, text in logs.items():
        for line in text.splitlines():
            assert ALICE not in line, (name, line)
            assert "finance-analysts\"]" not in line, (name, line)  # a groups claim value
            for token in w.tokens:
                assert token not in line and token.split(".")[1] not in line, (name, line)


# --- ext_authz alone makes the same end-user decision ---------------------------------


@pytest.fixture(scope="module")
def authz_world(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[MeshSandbox, SandboxIdp]]:
    workdir = tmp_path_factory.mktemp("identity-depth-authz")
    idp = SandboxIdp.create("https://idp.corp.example")
    (workdir / "jwks.json").write_bytes(idp.jwks())
    policy = f"""
trustDomain: {TRUST_DOMAIN}
jwt:
  header: x-user-token
  issuers: [{{issuer: "{idp.issuer}", audiences: [weir], jwks: {{file: jwks.json}}}}]
workloads:
  - name: payments-checkout
    match: ["{CHECKOUT}"]
    users: ["group:finance-analysts"]
    requireUser: true
"""
    with MeshSandbox(workdir, policy_text=policy, ext_proc=False, ext_authz=True) as mesh:
        yield mesh, idp


@pytest.mark.parametrize(
    ("claims", "error", "reason"),
    [
        ({"groups": ["finance-analysts"]}, None, None),
        ({"groups": ["sales"]}, openai.PermissionDeniedError, "not in workload"),
        (None, openai.AuthenticationError, "requires an end-user token"),
        ({"groups": ["finance-analysts"], "exp": 1}, openai.AuthenticationError, "expired"),
    ],
    ids=["right-group", "wrong-group", "no-token", "expired"],
)
def test_ext_authz_alone_makes_the_same_end_user_decision(
    authz_world: tuple[MeshSandbox, SandboxIdp],
    claims: dict[str, object] | None,
    error: type[Exception] | None,
    reason: str | None,
) -> None:
    mesh, idp = authz_world
    mesh.clear_upstream_requests()
    headers = {}
    if claims is not None:
        headers["x-user-token"] = idp.token({**idp.claims(ALICE, "weir"), **claims})
    client = mesh.openai_client("checkout", default_headers=headers)
    if error is None:
        assert client.chat.completions.create(model="gpt-4o", messages=PROMPT).choices
        assert len(mesh.upstream_requests()) == 1
        return
    with pytest.raises(error) as raised:
        client.chat.completions.create(model="gpt-4o", messages=PROMPT)
    assert reason is not None and reason in str(raised.value)
    assert mesh.upstream_requests() == []
    assert ALICE not in mesh.weir_log()
