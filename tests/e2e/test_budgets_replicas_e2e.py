"""Two `weir serve` replicas behind one Envoy cluster, sharing one Redis: one budget that
20 parallel calls across both cannot overspend, and one `/inventory` on both."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
import redis
from weir_admin import eventually, get

from extproc.shared_store import USED_FIELD, budget_key
from mesh.budget_policy import Budget
from mesh.redis_server import RedisServer, redis_binary
from mesh.sandbox import TRUST_DOMAIN, MeshSandbox

pytestmark = pytest.mark.skipif(redis_binary() is None, reason="redis-server not installed")
BUDGET = Budget(tokens=300, window="1h")
EVENTS = 20
POLICY = f"""\
trustDomain: {TRUST_DOMAIN}
defaultAction: deny
workloads:
  - name: payments-checkout
    match: ["spiffe://{TRUST_DOMAIN}/ns/payments/sa/checkout"]
    budget: {{tokens: {BUDGET.tokens}, window: {BUDGET.window}}}
"""


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MeshSandbox, str]]:
    workdir: Path = tmp_path_factory.mktemp("replicas")
    with RedisServer(workdir / "redis") as server:
        sandbox = MeshSandbox(
            workdir / "sandbox", policy_text=POLICY, replicas=2,
            weir_args=("--redis", server.url),
        )
        with sandbox as running:
            yield running, server.url


def spent(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        key = budget_key("workload:payments-checkout", BUDGET.window,
                         BUDGET.window_start(time.time()))
        return int(client.hget(key, USED_FIELD) or 0)
    finally:
        client.close()


def one_call(mesh: MeshSandbox) -> str:
    client = mesh.openai_client("checkout")
    try:
        stream = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "echo: a b c"}],
            stream=True, stream_options={"include_usage": True},
            extra_headers={"x-fake-events": str(EVENTS), "x-fake-piece-delay-ms": "10"},
        )
        for _ in stream:
            pass
    except openai.RateLimitError:
        return "refused"
    except openai.APIError as exc:
        assert "budget" in str(exc)
        return "ended"
    return "completed"


def test_two_replicas_share_one_budget_and_one_inventory(
    replicas: tuple[MeshSandbox, str],
) -> None:
    mesh, url = replicas
    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(lambda _: one_call(mesh), range(20)))
    # One whole answer: 4 input words and EVENTS content events, as the fake upstream counts.
    answer = 4 + EVENTS
    total = spent(url)
    overshoot = total - BUDGET.tokens
    print(f"\nbudget {BUDGET.tokens}, spent {total}, overshoot {overshoot} tokens "
          f"(one answer is {answer}); outcomes {sorted(outcomes)}")
    # 20 answers of 24 tokens cannot fit in 300: most are refused up front or ended in band.
    assert outcomes.count("completed") <= BUDGET.tokens // answer
    assert BUDGET.tokens < total <= BUDGET.tokens + answer, (
        f"spent {total}: more than one answer's overshoot"
    )
    assert one_call(mesh) == "refused"  # and the window is spent, on either replica
    assert one_call(mesh) == "refused"

    # Both replicas served calls, and both answer with the same cluster inventory.
    for replica in (0, 1):
        _, metrics = get(mesh.weir_admin_url("/metrics", replica))
        served = sum(
            float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
            if line.startswith("weir_requests_total{") and "payments-checkout" in line
        )
        assert served >= 1, f"replica {replica} served none of the calls"

    def views() -> tuple[dict, dict]:
        a, b = (json.loads(get(mesh.weir_admin_url("/inventory", r))[1]) for r in (0, 1))
        for view in (a, b):
            view.pop("generatedAt")
        return a, b

    assert eventually(lambda: views()[0] == views()[1], timeout=10)
    view, _ = views()
    assert (view["scope"], view["replicas"]) == ("cluster", 2)
    [workload] = view["workloads"]
    assert workload["budget"] == {"used": spent(url), "limit": 300, "unit": "tokens / 1h"}
    assert workload["requests"] == 22
    assert sum(workload["decisions"].values()) == 22
