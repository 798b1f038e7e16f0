"""ext_authz Check latency at a fixed request rate, next to OPA-Envoy's published figures.

Starts ``weir serve`` as a subprocess (its own interpreter and event loop, as in
production) on loopback, then sends ``Authorization/Check`` calls over gRPC on
an *open-loop* schedule: call i is due at ``t0 + i / rate`` whether or not
earlier calls have returned, and its latency is measured from when it was due.
A slow server therefore shows up in the tail instead of silently lowering the
rate (no coordinated omission). Half the calls are allowed, half denied (the
denial builds the provider-format 403 body).

OPA-Envoy's documentation reports, for its ext_authz gRPC server at 1,000 rps:
median 0.35 ms, p99 3 ms. Weir's numbers include the Python gRPC client in
this process, so they are an upper bound on what Envoy would see.

Run: ``python loadtest/bench_authz.py [--rate 1000] [--duration 10]``. Bounded:
it stops after warm-up + duration (+ a drain timeout) and kills what it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import grpc

from extproc.authz import AUTHZ_SERVICE
from mesh.sandbox import free_port
from protos import wire

OPA_ENVOY_P50_MS = 0.35
OPA_ENVOY_P99_MS = 3.0

POLICY = """\
trustDomain: cluster.local
defaultAction: deny
mode: enforce
workloads:
  - name: checkout
    match: ["spiffe://cluster.local/ns/payments/sa/checkout"]
    models: ["gpt-4o"]
  - name: research
    match: ["spiffe://cluster.local/ns/research/*"]
"""


def check_request(principal: str) -> wire.CheckRequest:
    request = wire.CheckRequest()
    request.attributes.source.principal = principal
    http = request.attributes.request.http
    http.method, http.path, http.host = "POST", "/v1/chat/completions", "api.openai.com"
    http.headers.update({"content-type": "application/json", "authorization": "Bearer sk-x"})
    return request


def percentile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))
    return sorted_values[index]


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"weir serve exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("weir serve not ready in time")


async def run_load(
    target: str, rate: float, seconds: float, requests: list[wire.CheckRequest]
) -> tuple[list[float], int]:
    """Open-loop load for ``seconds``; latencies (s) from each call's due time, and errors."""
    latencies: list[float] = []
    errors = 0
    async with grpc.aio.insecure_channel(target) as channel:
        check = channel.unary_unary(
            f"/{AUTHZ_SERVICE}/Check",
            request_serializer=wire.CheckRequest.SerializeToString,
            response_deserializer=wire.CheckResponse.FromString,
        )
        await channel.channel_ready()

        async def one(request: wire.CheckRequest, due: float) -> None:
            nonlocal errors
            try:
                await check(request, timeout=5)
            except grpc.aio.AioRpcError:
                errors += 1
                return
            latencies.append(time.perf_counter() - due)

        loop_start = time.perf_counter()
        total = int(rate * seconds)
        tasks = []
        for i in range(total):
            due = loop_start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(requests[i % len(requests)], due)))
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
    return latencies, errors


def server_decision_mean_ms(admin: str) -> float | None:
    with urllib.request.urlopen(f"{admin}/metrics", timeout=5) as response:
        text = response.read().decode()
    total = re.search(r"^weir_authz_check_duration_seconds_sum (\S+)$", text, re.M)
    count = re.search(r"^weir_authz_check_duration_seconds_count (\S+)$", text, re.M)
    if not total or not count or float(count.group(1)) == 0:
        return None
    return float(total.group(1)) / float(count.group(1)) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="Check calls per second")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.rate <= 0 or not 0 < args.duration <= 120:
        parser.error("--rate must be positive and --duration in (0, 120]")

    grpc_port, admin_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="weir-bench-authz-") as tmp:
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(POLICY)
        log_path = Path(tmp) / "weir.log"
        with open(log_path, "wb") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "extproc.cli", "serve", "--policy", str(policy),
                 "--grpc-listen", f"127.0.0.1:{grpc_port}",
                 "--admin-listen", f"127.0.0.1:{admin_port}"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        try:
            admin = f"http://127.0.0.1:{admin_port}"
            wait_ready(f"{admin}/readyz", server)
            requests = [
                check_request("spiffe://cluster.local/ns/payments/sa/checkout"),  # allowed
                check_request("spiffe://cluster.local/ns/batch/sa/etl"),  # denied: 403 body
            ]
            target = f"127.0.0.1:{grpc_port}"
            asyncio.run(run_load(target, args.rate, args.warmup, requests))
            latencies, errors = asyncio.run(run_load(target, args.rate, args.duration, requests))
            decision_ms = server_decision_mean_ms(admin)
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(5)

    ms = sorted(v * 1000 for v in latencies)
    result = {
        "rate_rps": args.rate,
        "duration_s": args.duration,
        "calls": len(ms) + errors,
        "errors": errors,
        "p50_ms": round(statistics.median(ms), 3),
        "p90_ms": round(percentile(ms, 0.90), 3),
        "p99_ms": round(percentile(ms, 0.99), 3),
        "p999_ms": round(percentile(ms, 0.999), 3),
        "max_ms": round(ms[-1], 3),
        "server_decision_mean_ms": None if decision_ms is None else round(decision_ms, 4),
        "opa_envoy_p50_ms": OPA_ENVOY_P50_MS,
        "opa_envoy_p99_ms": OPA_ENVOY_P99_MS,
    }
    if args.json:
        print(json.dumps(result))
        return 0 if errors == 0 else 1
    print(f"ext_authz Check at {args.rate:.0f} rps for {args.duration:.0f} s "
          f"(open loop, weir serve subprocess, loopback gRPC, 50% allow / 50% deny)")
    print(f"  calls {result['calls']}, errors {errors}")
    print(f"  {'':14}{'p50':>9}{'p90':>9}{'p99':>9}{'p99.9':>9}{'max':>9}")
    print(f"  {'weir':14}{result['p50_ms']:>7.3f}ms{result['p90_ms']:>7.3f}ms"
          f"{result['p99_ms']:>7.3f}ms{result['p999_ms']:>7.3f}ms{result['max_ms']:>7.3f}ms")
    print(f"  {'OPA-Envoy':14}{OPA_ENVOY_P50_MS:>7.3f}ms{'':>9}{OPA_ENVOY_P99_MS:>7.3f}ms"
          "   (published, 1,000 rps)")
    if decision_ms is not None:
        print(f"  Weir's own decision time (mean, from its metrics): {decision_ms:.4f} ms")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
