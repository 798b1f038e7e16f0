"""The policy loader over arbitrary YAML: a Policy or a PolicyError, nothing else, and a
loaded policy decides any identity and model without raising."""

from __future__ import annotations

from mesh.policy import PolicyError, parse_policy

SEEDS = [
    b"""trustDomain: cluster.local
defaultAction: deny
mode: enforce
identitySources: [peer-certificate, xfcc]
xfcc: {trustedProxies: ["spiffe://cluster.local/ns/istio-system/sa/gw"]}
workloads:
  - name: payments
    match: ["spiffe://cluster.local/ns/payments/*"]
    models: ["gpt-4o*", "claude-*"]
    request:  [{scanner: secrets, action: block}]
    response: [{scanner: pii, action: redact}]
  - name: open
    match: [unauthenticated]
""",
    b"trustDomain: cluster.local\nworkloads: [{name: x, match: 7}]\n",
    b"a: &a [*a]\n",
    b"trustDomain: cluster.local\ntrustDomain: other\n",
    b"!!python/object:os.system ls\n",
]
PRINCIPALS = ("unauthenticated", "spiffe://cluster.local/ns/payments/sa/checkout",
              "spiffe://cluster.local/ns/research/sa/notebook")


def TestOneInput(data: bytes) -> None:
    try:
        policy = parse_policy(data, "fuzz.yaml")
    except PolicyError as exc:
        assert str(exc).startswith("fuzz.yaml: ")
        return
    for principal in PRINCIPALS:
        for model in (None, "gpt-4o", "*", ""):
            decision = policy.decide(principal, model)
            assert isinstance(decision.allowed, bool)
        policy.workload_for(principal)
