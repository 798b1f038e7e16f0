"""Token budgets end to end: the official SDKs -> real Envoy (mTLS) -> `weir serve --redis`
-> the fake upstream, with a real `redis-server` the tests start, kill and restart."""

from __future__ import annotations

import time
from collections.abc import Iterator

import anthropic
import openai
import pytest
import redis
from weir_admin import eventually, get

from extproc.shared_store import USED_FIELD, budget_key
from mesh.budget_policy import Budget
from mesh.redis_server import RedisServer, redis_binary
from mesh.sandbox import TRUST_DOMAIN, MeshSandbox

pytestmark = pytest.mark.skipif(redis_binary() is None, reason="redis-server not installed")


def budget_policy(on_unavailable: str = "closed") -> str:
    return f"""\
trustDomain: {TRUST_DOMAIN}
defaultAction: deny
budgetStore: {{onUnavailable: {on_unavailable}}}
workloads:
  - name: payments-checkout
    match: ["spiffe://{TRUST_DOMAIN}/ns/payments/sa/checkout"]
    budget: {{tokens: 60, window: 1h}}
  - name: research
    match: ["spiffe://{TRUST_DOMAIN}/ns/research/*"]
    budget: {{tokens: 100000, window: 1d}}
    response: [{{scanner: secrets, action: redact}}]
  - name: batch
    match: ["spiffe://{TRUST_DOMAIN}/ns/batch/*"]
    budget: {{tokens: 80, window: 1h}}
  - name: finance-assistant
    match: ["spiffe://{TRUST_DOMAIN}/ns/finance/*"]
    budget: {{tokens: 100000, window: 1h}}
"""


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis"), persistent=True) as server:
        yield server


@pytest.fixture(scope="module")
def budget_mesh(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer
) -> Iterator[MeshSandbox]:
    sandbox = MeshSandbox(
        tmp_path_factory.mktemp("budget-sandbox"), policy_text=budget_policy(),
        weir_args=("--redis", redis_server.url),
    )
    with sandbox as running:
        yield running


def used(server: RedisServer, scope: str, budget: Budget) -> int:
    client = redis.Redis.from_url(server.url)
    try:
        key = budget_key(scope, budget.window, budget.window_start(time.time()))
        return int(client.hget(key, USED_FIELD) or 0)
    finally:
        client.close()


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"echo: {text}"}]


def test_after_the_budget_is_spent_the_next_call_gets_rate_limit_error_with_retry_after(
    budget_mesh: MeshSandbox, redis_server: RedisServer
) -> None:
    client = budget_mesh.openai_client("checkout")
    spent = 0
    with pytest.raises(openai.RateLimitError) as raised:
        for _ in range(30):
            completion = client.chat.completions.create(
                model="gpt-4o", messages=ask("one two three four five six seven eight"),
            )
            assert completion.usage is not None
            spent += completion.usage.total_tokens
    response = raised.value.response
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 3600
    assert response.headers["x-should-retry"] == "false" or retry_after <= 60
    assert raised.value.code == "weir_budget_exhausted"
    assert spent <= 60  # admitted calls never spent past the budget here
    assert used(redis_server, "workload:payments-checkout", Budget(60, "1h")) == spent
    # The same budget speaks Anthropic to an Anthropic client (the same prompt: no room).
    with pytest.raises(anthropic.RateLimitError) as refused:
        budget_mesh.anthropic_client("checkout").messages.create(
            model="claude-sonnet-4-5", max_tokens=64,
            messages=ask("one two three four five six seven eight"),
        )
    assert refused.value.response.headers["retry-after"] == response.headers["retry-after"] or (
        abs(int(refused.value.response.headers["retry-after"]) - retry_after) <= 1
    )


def test_a_stream_whose_client_did_not_ask_for_usage_is_metered_exactly_and_unchanged(
    budget_mesh: MeshSandbox, redis_server: RedisServer
) -> None:
    scope, budget = "workload:research", Budget(100000, "1d")
    before = used(redis_server, scope, budget)
    client = budget_mesh.openai_client("notebook")
    text = "alpha beta gamma delta epsilon"
    chunks = list(client.chat.completions.create(
        model="gpt-4o", messages=ask(text), stream=True,
    ))
    assert all(chunk.usage is None for chunk in chunks)
    assert all(chunk.choices for chunk in chunks), "no usage-only chunk reaches the client"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == text
    # The fake upstream reports 6 input words and 5 content events: 11 tokens, exactly.
    assert eventually(lambda: used(redis_server, scope, budget) - before == 11)
    # A client that asks for usage still gets it, and is metered the same.
    asked = list(client.chat.completions.create(
        model="gpt-4o", messages=ask(text), stream=True,
        stream_options={"include_usage": True},
    ))
    usage = asked[-1].usage
    assert usage is not None and asked[-1].choices == []
    assert (usage.prompt_tokens, usage.completion_tokens) == (6, 5)
    assert eventually(lambda: used(redis_server, scope, budget) - before == 22)


def test_a_streamed_answer_that_crosses_the_budget_ends_in_band_and_the_sdk_raises(
    budget_mesh: MeshSandbox, redis_server: RedisServer
) -> None:
    client = budget_mesh.openai_client("etl")
    received = []
    stream = client.chat.completions.create(
        model="gpt-4o", messages=ask("go"), stream=True,
        extra_headers={"x-fake-events": "400", "x-fake-piece-delay-ms": "2"},
    )
    with pytest.raises(openai.APIError) as raised:
        for chunk in stream:
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")
    assert "budget" in str(raised.value)
    assert 10 < len(received) < 400, "the text up to the budget was delivered, not the rest"
    spent = used(redis_server, "workload:batch", Budget(80, "1h"))
    assert 80 < spent <= 80 + 10, f"one event's overshoot at most, spent {spent}"
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o", messages=ask("more"))


def test_redis_killed_closed_refuses_fast_open_allows_and_counts_once_after_restart(
    budget_mesh: MeshSandbox, redis_server: RedisServer
) -> None:
    scope, budget = "workload:finance-assistant", Budget(100000, "1h")
    client = budget_mesh.openai_client("assistant")
    first = client.chat.completions.create(model="gpt-4o", messages=ask("a b c"))
    assert first.usage is not None
    assert eventually(lambda: used(redis_server, scope, budget) == first.usage.total_tokens)
    redis_server.stop()
    try:
        started = time.monotonic()
        with pytest.raises(openai.InternalServerError) as raised:
            client.chat.completions.create(model="gpt-4o", messages=ask("refused"))
        refused_in = time.monotonic() - started
        assert refused_in < 0.2, f"closed took {refused_in * 1000:.0f} ms to refuse"
        assert raised.value.status_code == 503
        assert "budget store is unavailable" in str(raised.value)
        status, text = get(budget_mesh.weir_admin_url("/readyz"))
        assert status == 200 and "budget-store=redis:down" in text
        _, metrics = get(budget_mesh.weir_admin_url("/metrics"))
        assert 'weir_budget_store_errors_total{op="charge",store="redis"}' in metrics
        # onUnavailable: open lets calls through, and keeps what they spent.
        budget_mesh.policy_path.write_text(budget_policy("open"))
        probes: list[int] = []
        assert eventually(lambda: _allowed(client, probes), timeout=10)
        opened = client.chat.completions.create(model="gpt-4o", messages=ask("d e f g"))
        assert opened.usage is not None
    finally:
        redis_server.start()
    # Back with its data: the kept charges land once, however often they are sent.
    counted = first.usage.total_tokens + sum(probes) + opened.usage.total_tokens
    assert eventually(lambda: used(redis_server, scope, budget) == counted, timeout=10)
    time.sleep(1.5)  # more flush rounds: nothing may count twice
    assert used(redis_server, scope, budget) == counted
    after = client.chat.completions.create(model="gpt-4o", messages=ask("h"))
    assert after.usage is not None
    assert eventually(
        lambda: used(redis_server, scope, budget) == counted + after.usage.total_tokens
    )
    status, text = get(budget_mesh.weir_admin_url("/readyz"))
    assert "budget-store=redis:up" in text
    budget_mesh.policy_path.write_text(budget_policy())


def _allowed(client: openai.OpenAI, spent: list[int]) -> bool:
    try:
        completion = client.chat.completions.create(model="gpt-4o", messages=ask("probe"))
    except openai.InternalServerError:
        return False
    assert completion.usage is not None
    spent.append(completion.usage.total_tokens)
    return True


