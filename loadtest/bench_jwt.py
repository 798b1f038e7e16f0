"""The added cost of end-user JWT validation per request, with the keys cached.

In process, no sockets: the request-headers step of `Exchange` for one LLM call,
timed call by call, for the same workload
- without a `jwt` section and without a token (the reference, same run);
- with a `jwt` section, a valid RS256 token (2048-bit key) and a `users` rule;
- the same with an ES256 (P-256) token.
The variants are interleaved call by call, so machine noise lands on all of them
alike, and each call is timed in thread CPU time, so time the scheduler gives to
other processes is not counted. It reports p50 and p99 of each and the added cost
over the reference.

    python -m loadtest.bench_jwt [--calls 5000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from extproc.events import Direction, HeadersEvent
from extproc.stream import Exchange
from mesh.jwks import JwksCache
from mesh.policy import Policy, load_policy
from mesh.sandbox_idp import SandboxIdp

REQ = Direction.REQUEST
PEER = "spiffe://cluster.local/ns/finance/sa/assistant"
RULE = f"""\
workloads:
  - name: finance-assistant
    match: ["{PEER}"]
    models: ["gpt-4o"]
"""


def policies(root: Path) -> tuple[Policy, dict[str, tuple[Policy, str]]]:
    reference_path = root / "reference.yaml"
    reference_path.write_text("trustDomain: cluster.local\n" + RULE)
    reference = load_policy(reference_path)
    variants: dict[str, tuple[Policy, str]] = {}
    for alg in ("RS256", "ES256"):
        idp = SandboxIdp.create(f"https://idp-{alg.lower()}.example", alg=alg)
        (root / f"{alg}.json").write_bytes(idp.jwks())
        path = root / f"{alg}.yaml"
        path.write_text(
            "trustDomain: cluster.local\n"
            "jwt:\n"
            "  header: x-user-token\n"
            f"  issuers: [{{issuer: '{idp.issuer}', audiences: [weir], "
            f"jwks: {{file: {alg}.json}}, algorithms: [{alg}]}}]\n"
            + RULE
            + '    users: ["group:finance-analysts"]\n    requireUser: true\n'
        )
        token = idp.token(idp.claims("alice@corp.example", "weir", lifetime=3600,
                                     groups=["finance-analysts"]))
        variants[alg] = (load_policy(path), token)
    return reference, variants


def headers_step(policy: Policy, keys: JwksCache, token: str | None) -> float:
    headers: tuple[tuple[str, str], ...] = (
        (":method", "POST"), (":path", "/v1/chat/completions"), (":authority", "api.openai.com"),
        ("content-type", "application/json"), ("authorization", "Bearer sk-not-a-jwt"),
    )
    if token is not None:
        headers = (*headers, ("x-user-token", token))
    event = HeadersEvent(REQ, headers, False, {"connection.uri_san_peer_certificate": PEER})
    # CPU time of this thread: on a shared machine, wall time also counts the moments
    # the scheduler gave the core to someone else.
    started = time.thread_time()
    exchange = Exchange(policy, keys=keys)
    actions = exchange.receive(event)
    elapsed = time.thread_time() - started
    assert actions == [] and exchange.record.verdict == "pending", exchange.record
    return elapsed


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def measure(calls: int) -> dict[str, tuple[float, float]]:
    """name -> (p50, p99) in seconds, for the reference and each token algorithm."""
    with tempfile.TemporaryDirectory() as tmp:
        reference, variants = policies(Path(tmp))
        keys = JwksCache()  # the file keys seed it: every call below finds them cached
        samples: dict[str, list[float]] = {"reference": [], **{alg: [] for alg in variants}}
        for _ in range(50):  # warm-up
            headers_step(reference, keys, None)
            for policy, token in variants.values():
                headers_step(policy, keys, token)
        for _ in range(calls):
            samples["reference"].append(headers_step(reference, keys, None))
            for alg, (policy, token) in variants.items():
                samples[alg].append(headers_step(policy, keys, token))
    return {name: (percentile(v, 0.50), percentile(v, 0.99)) for name, v in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args()
    figures = measure(args.calls)
    ref50, ref99 = figures["reference"]
    print(f"request-headers step, {args.calls} calls each, interleaved (µs of thread CPU time)")
    print(f"{'variant':<28}{'p50':>9}{'p99':>9}{'added p50':>11}{'added p99':>11}")
    print(f"{'no jwt, no token (ref.)':<28}{ref50 * 1e6:9.1f}{ref99 * 1e6:9.1f}")
    for alg in ("RS256", "ES256"):
        p50, p99 = figures[alg]
        print(f"{'user token, ' + alg + ' cached':<28}{p50 * 1e6:9.1f}{p99 * 1e6:9.1f}"
              f"{(p50 - ref50) * 1e6:11.1f}{(p99 - ref99) * 1e6:11.1f}")


if __name__ == "__main__":
    main()
