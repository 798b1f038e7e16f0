"""With the OTLP collector down, guarded calls neither fail nor make Weir grow.

A bounded run: a few hundred calls through real Envoy, Weir's memory read
between a warmed-up point and the end. The heavier measurement (throughput
against telemetry off, in one run) is `loadtest/bench_otlp_down.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from weir_admin import metric_matching

from mesh.sandbox import MeshSandbox, free_port

HELLO = [{"role": "user", "content": "echo: hello"}]
WARM_UP, MEASURED, THREADS = 150, 450, 4
# Allowance for allocator noise; an unbounded queue would hold every span of the run.
MAX_GROWTH_KIB = 8 * 1024


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def collector_down(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshSandbox]:
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with MeshSandbox(
        tmp_path_factory.mktemp("otlp-down"),
        weir_args=("--otlp-endpoint", nobody),
        weir_env={"OTEL_BSP_MAX_QUEUE_SIZE": "64", "OTEL_BSP_SCHEDULE_DELAY": "50",
                  "OTEL_BSP_EXPORT_TIMEOUT": "2000", "OTEL_METRIC_EXPORT_INTERVAL": "500"},
    ) as running:
        yield running


def drive(mesh: MeshSandbox, calls: int) -> list[str]:
    """Run `calls` completions on THREADS clients; the finish reason of each."""
    clients = [mesh.openai_client("checkout") for _ in range(THREADS)]

    def one(n: int) -> str:
        completion = clients[n % THREADS].chat.completions.create(model="gpt-4o", messages=HELLO)
        return str(completion.choices[0].finish_reason)

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(one, range(calls)))


def test_calls_succeed_and_memory_stays_flat_while_the_collector_is_down(
    collector_down: MeshSandbox,
) -> None:
    mesh = collector_down
    pid = mesh.pids()["weir"]
    assert drive(mesh, WARM_UP) == ["stop"] * WARM_UP
    before = rss_kib(pid)
    assert drive(mesh, MEASURED) == ["stop"] * MEASURED
    after = rss_kib(pid)

    assert metric_matching(mesh, r"weir_stream_errors_total") == 0
    assert metric_matching(
        mesh, r'weir_requests_total\{.*decision="allow".*\}') == WARM_UP + MEASURED
    # Nothing reached a collector; what the queue could not hold was counted, not kept.
    assert metric_matching(mesh, r'weir_otlp_spans_total\{result="exported"\}') == 0
    assert metric_matching(mesh, r'weir_otlp_spans_total\{result="dropped"\}') > 0
    print(f"weir RSS {before} KiB -> {after} KiB over {MEASURED} calls")
    assert after - before < MAX_GROWTH_KIB, (before, after)
