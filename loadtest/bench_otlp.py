"""What OpenTelemetry export costs a guarded call, and what a dead collector costs it.

Three sandboxes in one run, each driven with the same streamed chat calls
through real Envoy: telemetry off (the reference), export to a live OTLP
receiver, and export to an endpoint where nothing listens. It reports calls per
second as a ratio against the reference, errors, spans exported or dropped, and
Weir's RSS before and after the measured calls.

    python -m loadtest.bench_otlp [--calls 2000] [--threads 8]
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from loadtest.otlp_receiver import OtlpReceiver
from mesh.sandbox import MeshSandbox, free_port

HELLO = [{"role": "user", "content": "echo: a short note about rivers"}]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def metric(mesh: MeshSandbox, pattern: str) -> float:
    with urllib.request.urlopen(mesh.weir_admin_url("/metrics"), timeout=5) as response:
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if re.match(pattern, line))


def drive(mesh: MeshSandbox, calls: int, threads: int) -> tuple[float, int]:
    """(seconds, failed calls) for `calls` streamed completions on `threads` clients."""
    clients = [mesh.openai_client("checkout") for _ in range(threads)]

    def one(n: int) -> bool:
        try:
            chunks = list(clients[n % threads].chat.completions.create(
                model="gpt-4o", messages=HELLO, stream=True))
            return bool(chunks) and chunks[-1].choices[0].finish_reason == "stop"
        except Exception:
            return False

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(one, range(calls)))
    return time.perf_counter() - started, results.count(False)


def run(name: str, args: Sequence[str], env: Mapping[str, str], calls: int,
        threads: int) -> dict[str, float | str]:
    with tempfile.TemporaryDirectory(prefix=f"weir-bench-otlp-{name}-") as workdir, \
            MeshSandbox(Path(workdir), weir_args=args, weir_env=env) as mesh:
        pid = mesh.pids()["weir"]
        drive(mesh, max(calls // 10, 50), threads)  # warm up: JIT, connections
        before = rss_kib(pid)
        seconds, failed = drive(mesh, calls, threads)
        after = rss_kib(pid)
        time.sleep(1.5)  # let the worker flush what it holds
        return {
            "name": name, "calls_per_s": calls / seconds, "failed": failed,
            "stream_errors": metric(mesh, r"weir_stream_errors_total"),
            "exported": metric(mesh, r'weir_otlp_spans_total\{result="exported"\}'),
            "dropped": metric(mesh, r'weir_otlp_spans_total\{result="dropped"\}'),
            "export_failed": metric(mesh, r'weir_otlp_spans_total\{result="failed"\}'),
            "rss_before_kib": before, "rss_after_kib": after,
        }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=8)
    options = parser.parse_args(argv)
    tuning = {"OTEL_BSP_SCHEDULE_DELAY": "200", "OTEL_METRIC_EXPORT_INTERVAL": "1000"}
    rows = [run("off", (), {}, options.calls, options.threads)]
    with OtlpReceiver() as receiver:
        rows.append(run("collector up", ("--otlp-endpoint", receiver.endpoint), tuning,
                        options.calls, options.threads))
        received = len(receiver.spans())
    down = f"http://127.0.0.1:{free_port()}"
    rows.append(run("collector down", ("--otlp-endpoint", down), tuning,
                    options.calls, options.threads))
    reference = float(rows[0]["calls_per_s"])
    print(f"{options.calls} streamed calls, {options.threads} threads, through Envoy + Weir")
    print(f"{'run':16} {'calls/s':>8} {'ratio':>6} {'failed':>6} {'errors':>6} "
          f"{'exported':>8} {'failed':>8} {'dropped':>8} {'RSS KiB before -> after':>24}")
    for row in rows:
        print(f"{row['name']:16} {row['calls_per_s']:8.1f} "
              f"{float(row['calls_per_s']) / reference:6.2f} {row['failed']:6} "
              f"{row['stream_errors']:6.0f} {row['exported']:8.0f} {row['export_failed']:8.0f} "
              f"{row['dropped']:8.0f} "
              f"{row['rss_before_kib']:>11} -> {row['rss_after_kib']:<10}")
    print(f"the live receiver got {received} spans")
    return 0 if all(row["failed"] == 0 for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
