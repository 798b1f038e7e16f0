"""The load-test runner (`make bench`): Envoy alone, Envoy + the bare processor, Envoy + Weir.

One run starts the sandbox CA and SPIFFE certificates, the fake upstream, and
then, one setup after the other, the processor and a real Envoy 1.40 with the
mTLS listener (ext_proc in FULL_DUPLEX_STREAMED, fail closed):

1. ``envoy``: Envoy alone (no ext_proc filter);
2. ``bare``: Envoy + ``loadtest/bare_processor.py``, the do-nothing grpc.aio processor;
3. ``weir``: Envoy + ``weir serve`` with a full policy: secrets, PII and prompt
   injection on the request and the response, enforce mode.

For each setup it measures, all through mTLS with the ``checkout`` workload's
certificate:

- **k6** (``loadtest/k6/stream.js``), 32 VUs, SSE streams of 100 events:
  throughput, p50/p95/p99 request latency, stream failures;
- **CPU per request**: user+system CPU of Envoy and of the processor (its
  whole process tree) from ``/proc/<pid>/stat``, over the k6 run, divided by
  the requests k6 completed; and the processor's **RSS** (``VmRSS``, ``VmHWM``);
- **scaling curves** with k6: stream length (10/100/1000 events), event size
  (bytes per event), concurrency (1..64 VUs), and for Weir the number of rules
  as 10..500 custom deny-list terms (put in force by live policy reloads);
- **inter-token delay** (see :func:`inter_token_gaps`): 32 concurrent streams
  from an asyncio client, the upstream pacing events ``--token-interval-ms``
  apart; the gap between consecutive ``data:`` events is timed at the client.
  The *added* inter-token delay at quantile q is ``Q_q(gaps through Weir) -
  Q_q(gaps through Envoy alone)`` in the same run;
- **the added delay in two parts** (see :func:`delay_split`): the *hold-back*
  part, computed exactly by replaying the stream the fake upstream sends in that
  run through an in-process ``SseGuard`` with the full policy's response plan
  (:mod:`loadtest.hold_back`: what it releases on upstream write k goes out at
  k × interval, with zero processing time, and the client's gap measure is
  applied to that output; those gaps, given the jitter measured through Envoy
  alone, are what Envoy would deliver had it held text back as the guard does:
  hold-back part = that quantile minus Envoy's, processing part = Weir's
  measured quantile minus that, so the two add up to the measured added delay
  by telescoping). The check: the same gaps with every event late by an
  independent draw from Weir's message-time histogram of that very run; a
  processing part well above it is queueing and the gRPC hop. Per released
  text byte, the hold-back (upstream writes it waited × interval) is reported too;
- **per-message time** (:mod:`loadtest.message_time`):
  ``weir_message_processing_seconds`` (the issue's ``weir_message_seconds``)
  scraped from Weir's admin ``/metrics`` before and after the main k6 run at 32
  VUs (and the inter-token run); the p99 of the bucket delta, interpolated
  within its bucket as Prometheus's ``histogram_quantile`` does, and the exact
  shares at or below 0.3 ms and 1 ms (bucket bounds). The bare processor times
  its own answers into the same histogram in a k6 pass of its own
  (``--metrics``), beside Weir's as the reference;
- **locust** (``loadtest/locustfile.py``), headless, 32 users, bounded.

With ``--profile`` (the default) it also samples ``weir serve`` with py-spy
under the k6 load, in a separate pass, and lists where its time goes (by area,
module and function, and in one quotable paragraph).

It writes ``reports/bench-<timestamp>.md``, ``.png`` (the plot) and ``.json``
(every figure), and prints issue 12's four figures beside target and moonshot
(:mod:`loadtest.targets`: Weir ÷ do-nothing throughput, Weir ÷ Envoy
throughput, processor CPU per request Weir ÷ do-nothing, message-time p99), the
CPU per 1,000 streamed tokens (full policy and do-nothing; istio/README's
Sizing quotes them) and the two parts of the added delay. Every loop is
bounded in count and time; every target is loopback. ``--quick`` is a ~2
minute run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import datetime
import itertools
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loadtest.hold_back import (
    Identity,
    Replay,
    chunk_text,
    hold_back_part,
    predicted_gaps,
    replay,
    with_jitter,
)
from loadtest.message_time import MessageTime, message_time
from loadtest.targets import target_table

REPO = Path(__file__).resolve().parent.parent
K6_SCRIPT = REPO / "loadtest" / "k6" / "stream.js"
LOCUSTFILE = REPO / "loadtest" / "locustfile.py"
WORKLOAD = "checkout"
MODEL = "gpt-4o-mini"
SETUPS = ("envoy", "bare", "weir")
SETUP_TITLES = {
    "envoy": "Envoy alone",
    "bare": "Envoy + bare processor",
    "weir": "Envoy + Weir (full policy)",
}
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

# The full policy of issue 7: every scanner on both directions, enforce mode.
FULL_POLICY = """\
# loadtest/run_bench.py: secrets, PII and prompt injection on request and response.
trustDomain: cluster.local
defaultAction: deny
mode: enforce
identitySources: [peer-certificate]
workloads:
  - name: bench-checkout
    match: ["spiffe://cluster.local/ns/payments/sa/checkout"]
    request:
      - {scanner: secrets, action: block}
      - {scanner: pii, action: redact}
      - {scanner: prompt-injection, action: block}
    response:
      - {scanner: secrets, action: redact}
      - {scanner: pii, action: redact}
      - {scanner: prompt-injection, action: block}
"""


class BenchError(RuntimeError):
    pass


# --- settings ----------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    vus: int = 32
    events: int = 100
    warmup_s: float = 3.0
    main_s: float = 15.0
    curve_s: float = 7.0
    lengths: tuple[int, ...] = (10, 100, 1000)
    sizes: tuple[int, ...] = (16, 256, 4096)  # x-fake-event-bytes; "words" is the main run
    concurrency: tuple[int, ...] = (1, 4, 16, 32, 64)
    rule_counts: tuple[int, ...] = (10, 100, 500)  # deny-list terms added to the full policy
    itl_streams: int = 32
    itl_s: float = 8.0
    token_interval_ms: int = 20
    locust_s: float = 20.0
    locust_setups: tuple[str, ...] = SETUPS
    profile_s: float = 10.0
    profile: bool = True
    curves: bool = True
    locust: bool = True


QUICK = Settings(
    warmup_s=1.0,
    main_s=5.0,
    curve_s=3.0,
    lengths=(10, 100, 1000),
    sizes=(4096,),
    concurrency=(1, 32, 64),
    itl_s=3.0,
    locust_s=6.0,
    locust_setups=("envoy", "weir"),
    profile_s=5.0,
)


# --- process accounting from /proc --------------------------------------------


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (worker processes included)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo and len(tree) < 1000:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of the processes (fields 14 and 15 of /proc/PID/stat)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def machine_busy_seconds() -> float:
    """user + nice + system CPU time of the whole machine since boot (/proc/stat).

    Interrupt and softirq time is left out: loopback networking of the bench's own
    traffic lands there, unattributed to any process.
    """
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:4]]
    return sum(fields) / CLK_TCK


def memory_kib(pids: Sequence[int], key: str) -> int:
    """Sum of ``VmRSS`` or ``VmHWM`` (KiB) from /proc/PID/status."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


# --- the processes ----------------------------------------------------------------


def tool_binary(name: str) -> str:
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    raise BenchError(
        f"{name} not found next to {sys.executable} or on PATH; `make bench` installs it"
    )


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


@dataclass
class BareProcess:
    """`python -m loadtest.bare_processor` as a child process."""

    port: int
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    metrics_port: int | None = None  # set while it times its answers (--metrics)

    def start(self, timeout: float = 30.0, *, metrics_port: int | None = None) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.metrics_port = metrics_port
        extra = [] if metrics_port is None else ["--metrics", f"127.0.0.1:{metrics_port}"]
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "loadtest.bare_processor",
             "--listen", f"127.0.0.1:{self.port}", *extra],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=REPO, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise BenchError(f"bare processor exited: {self.log_path.read_text()[-2000:]}")
            if _port_open(self.port) and (metrics_port is None or _port_open(metrics_port)):
                return
            time.sleep(0.05)
        raise BenchError("bare processor did not listen in time")

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


class Rig:
    """The sandbox pieces, switched between the three setups."""

    def __init__(self, workdir: Path) -> None:
        from mesh.certs import write_pki
        from mesh.sandbox import TRUST_DOMAIN, MeshSandbox, free_port

        self.workdir = workdir
        self.sandbox = MeshSandbox(workdir, policy_text=FULL_POLICY, startup_timeout=180.0)
        self.sandbox.pki = write_pki(workdir / "pki", TRUST_DOMAIN, self.sandbox.workloads)
        self.sandbox.policy_path.write_text(FULL_POLICY)
        self.bare = BareProcess(free_port(), workdir / "bare.log")
        self.setup: str | None = None
        cert, key = self.sandbox.pki.workload(WORKLOAD)
        self.cert, self.key, self.ca = str(cert), str(key), str(self.sandbox.pki.ca)

    def start_upstream(self) -> None:
        self.sandbox.start_upstream()

    def use(self, setup: str, *, timed_bare: bool = False) -> None:
        """Switch to ``setup``; ``timed_bare`` runs the bare processor with its histogram."""
        from mesh.sandbox import free_port

        self.leave()
        self.setup = setup
        if setup == "envoy":
            self.sandbox.ext_proc, self.sandbox.unguarded = False, True
            self.sandbox.start_envoy()
        elif setup == "bare":
            self.sandbox.ext_proc, self.sandbox.unguarded = True, False
            self.bare.start(metrics_port=free_port() if timed_bare else None)
            self.sandbox.start_envoy(processor_port=self.bare.port)
        elif setup == "weir":
            self.sandbox.ext_proc, self.sandbox.unguarded = True, False
            self.sandbox.start_weir()
            self.sandbox.start_envoy()
        else:
            raise ValueError(setup)

    def leave(self) -> None:
        self.sandbox.stop_envoy()
        self.sandbox.stop_weir()
        self.bare.stop()
        self.setup = None

    def close(self) -> None:
        self.leave()
        self.sandbox.stop()

    def pids(self) -> dict[str, list[int]]:
        running = self.sandbox.pids()
        out: dict[str, list[int]] = {"envoy": [running["envoy"]] if "envoy" in running else []}
        if self.setup == "weir" and "weir" in running:
            out["processor"] = process_tree(running["weir"])
        elif self.setup == "bare" and self.bare.popen is not None:
            out["processor"] = process_tree(self.bare.popen.pid)
        else:
            out["processor"] = []
        out["upstream"] = [running["upstream"]] if "upstream" in running else []
        return out

    def metrics_text(self) -> str | None:
        """The processor's Prometheus text (Weir's admin port, the timed bare processor's)."""
        if self.setup == "weir":
            url = self.sandbox.weir_admin_url("/metrics")
        elif self.setup == "bare" and self.bare.metrics_port is not None:
            url = f"http://127.0.0.1:{self.bare.metrics_port}/metrics"
        else:
            return None
        with urllib.request.urlopen(url, timeout=10) as response:
            return str(response.read().decode())

    def processor_pid(self) -> int | None:
        pids = self.pids()["processor"]
        return pids[0] if pids else None

    def smoke(self) -> None:
        """One streamed request must come back whole before anything is timed."""
        request = urllib.request.Request(
            f"{self.sandbox.envoy_url}/v1/chat/completions",
            data=json.dumps(_body()).encode(),
            headers={"content-type": "application/json", "x-fake-events": "5"},
            method="POST",
        )
        context = self.sandbox.ssl_context(WORKLOAD)
        context.check_hostname = False
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            text = response.read().decode()
        if response.status != 200 or not text.rstrip().endswith("data: [DONE]"):
            raise BenchError(f"{self.setup}: smoke request failed: {response.status} {text[-300:]}")


def _body() -> dict[str, Any]:
    return {
        "model": MODEL,
        "stream": True,
        "messages": [{"role": "user", "content": "Say hello to the load test."}],
    }


# --- k6 ----------------------------------------------------------------------------


@dataclass
class LoadResult:
    tool: str
    setup: str
    vus: int
    events: int
    event_bytes: int | None
    duration_s: float
    requests: int = 0
    failures: int = 0
    rps: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    avg_ms: float = 0.0
    cpu_envoy_s: float = 0.0
    cpu_processor_s: float = 0.0
    cpu_upstream_s: float = 0.0
    cpu_client_s: float = 0.0  # k6 or locust (reaped children of this process)
    # CPU the whole machine spent outside the bench's own processes (other work running
    # at the same time), in cores over the run: a noisy neighbour shows here.
    foreign_cores: float = 0.0
    wall_s: float = 0.0  # the accounted window, k6's start-up and graceful stop included
    rss_kib: int = 0
    hwm_kib: int = 0
    deny_terms: int = 0  # custom deny-list terms in Weir's policy for this run

    @property
    def cpu_ms_per_request(self) -> float:
        if not self.requests:
            return float("nan")
        return 1000 * (self.cpu_envoy_s + self.cpu_processor_s) / self.requests


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def accounted(rig: Rig, result: LoadResult) -> Iterator[None]:
    pids = rig.pids()
    before = {role: cpu_seconds(p) for role, p in pids.items()}
    client_before = _children_cpu()
    busy_before, wall_before = machine_busy_seconds(), time.monotonic()
    own_before = cpu_seconds([os.getpid()])
    yield
    result.cpu_client_s = _children_cpu() - client_before
    busy = machine_busy_seconds() - busy_before
    own = cpu_seconds([os.getpid()]) - own_before
    pids_after = rig.pids()
    after = {role: cpu_seconds(p) for role, p in pids_after.items()}
    result.cpu_envoy_s = after["envoy"] - before["envoy"]
    result.cpu_processor_s = after["processor"] - before["processor"]
    result.cpu_upstream_s = after["upstream"] - before["upstream"]
    ours = (result.cpu_envoy_s + result.cpu_processor_s + result.cpu_upstream_s
            + result.cpu_client_s + own)
    result.wall_s = time.monotonic() - wall_before
    result.foreign_cores = max(0.0, busy - ours) / max(1e-9, result.wall_s)
    result.rss_kib = memory_kib(pids_after["processor"], "VmRSS")
    result.hwm_kib = memory_kib(pids_after["processor"], "VmHWM")


def start_k6(
    target: str, cert: str, key: str, summary: Path, *, vus: int, duration_s: float,
    events: int, event_bytes: int | None = None, model: str = MODEL,
) -> subprocess.Popen[str]:
    """`loadtest/k6/stream.js` against `target` with a client certificate, in the background.

    Bounded by ``duration_s``; the summary (k6's JSON) lands in `summary`. Used by the
    runner and by the reload-under-load test.
    """
    env = {
        **os.environ,
        "TARGET": target,
        "CERT": cert,
        "KEY": key,
        "VUS": str(vus),
        "DURATION": f"{duration_s:g}s",
        "EVENTS": str(events),
        "EVENT_BYTES": str(event_bytes or ""),
        "MODEL": model,
        "SUMMARY": str(summary),
        "K6_NO_USAGE_REPORT": "true",
    }
    command = [tool_binary("k6"), "run", "--quiet", "--no-color", str(K6_SCRIPT)]
    return subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def k6_summary(run: subprocess.Popen[str], summary: Path, timeout_s: float) -> dict[str, Any]:
    """Wait for a `start_k6` run; its metrics, or BenchError with k6's output."""
    try:
        stdout, stderr = run.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        run.kill()
        stdout, stderr = run.communicate()
    if run.returncode != 0 or not summary.exists():
        raise BenchError(f"k6 failed ({run.returncode}):\n{stdout[-2000:]}\n{stderr[-3000:]}")
    metrics: dict[str, Any] = json.loads(summary.read_text())["metrics"]
    return metrics


def run_k6(
    rig: Rig, *, vus: int, duration_s: float, events: int, event_bytes: int | None = None,
    label: str = "",
) -> LoadResult:
    assert rig.setup is not None
    result = LoadResult("k6", rig.setup, vus, events, event_bytes, duration_s)
    summary = rig.workdir / f"k6-{rig.setup}-{label or 'run'}-{vus}-{events}-{event_bytes}.json"
    with accounted(rig, result):
        run = start_k6(rig.sandbox.envoy_url, rig.cert, rig.key, summary, vus=vus,
                       duration_s=duration_s, events=events, event_bytes=event_bytes)
        metrics = k6_summary(run, summary, duration_s + 90)
    reqs = metrics.get("http_reqs", {}).get("values", {})
    latency = metrics.get("http_req_duration", {}).get("values", {})
    result.requests = int(reqs.get("count", 0))
    result.rps = float(reqs.get("rate", 0.0))
    result.failures = int(metrics.get("stream_failures", {}).get("values", {}).get("count", 0))
    result.p50_ms = float(latency.get("med", 0.0))
    result.p95_ms = float(latency.get("p(95)", 0.0))
    result.p99_ms = float(latency.get("p(99)", 0.0))
    result.avg_ms = float(latency.get("avg", 0.0))
    return result


# --- locust --------------------------------------------------------------------------


def run_locust(rig: Rig, *, users: int, duration_s: float, events: int) -> LoadResult:
    assert rig.setup is not None
    result = LoadResult("locust", rig.setup, users, events, None, duration_s)
    prefix = rig.workdir / f"locust-{rig.setup}"
    env = {
        **os.environ,
        "WEIR_BENCH_CERT": rig.cert,
        "WEIR_BENCH_KEY": rig.key,
        "WEIR_BENCH_CA": rig.ca,
        "WEIR_BENCH_EVENTS": str(events),
        "WEIR_BENCH_MODEL": MODEL,
    }
    command = [
        tool_binary("locust"), "-f", str(LOCUSTFILE), "--headless",
        "-u", str(users), "-r", str(users), "-t", f"{duration_s:g}s",
        "--stop-timeout", "10", "--host", rig.sandbox.envoy_url,
        "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING",
    ]
    with accounted(rig, result):
        done = subprocess.run(
            command, env=env, cwd=REPO, capture_output=True, text=True,
            timeout=duration_s + 90,
        )
    stats = Path(f"{prefix}_stats.csv")
    if not stats.exists():
        raise BenchError(f"locust failed ({done.returncode}):\n{done.stderr[-3000:]}")
    with stats.open() as fh:
        rows = [row for row in csv.DictReader(fh) if row.get("Name") == "Aggregated"]
    if not rows:
        raise BenchError(f"locust wrote no aggregate row:\n{done.stderr[-3000:]}")
    row = rows[0]
    result.requests = int(row["Request Count"])
    result.failures = int(row["Failure Count"])
    result.rps = float(row["Requests/s"])
    result.avg_ms = float(row["Average Response Time"])
    result.p50_ms = float(row["50%"])
    result.p95_ms = float(row["95%"])
    result.p99_ms = float(row["99%"])
    return result


# --- inter-token delay -----------------------------------------------------------------


@dataclass
class GapResult:
    setup: str
    streams: int
    interval_ms: int
    completed: int = 0
    failed: int = 0
    gaps_ms: list[float] = field(default_factory=list)
    ttfe_ms: list[float] = field(default_factory=list)  # time to first event

    def quantiles(self) -> dict[str, float]:
        return {f"p{q}": percentile(self.gaps_ms, q) for q in (50, 90, 99, 99.9)} | {
            "max": max(self.gaps_ms, default=float("nan"))
        }


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), q))


def _carries_text(line: bytes) -> bool:
    """A chat chunk with non-empty content: a token the user sees, not framing.

    The same test as the hold-back replay's (:func:`loadtest.hold_back.chunk_text`).
    """
    return bool(chunk_text(line))


async def inter_token_gaps(
    url: str, context: Any, *, streams: int, duration_s: float, events: int, interval_ms: int,
    setup: str,
) -> GapResult:
    """Time every ``data:`` event of ``streams`` concurrent paced SSE streams at the client.

    Method. The upstream writes one event every ``interval_ms`` (``x-fake-piece-delay-ms``),
    a model's token rate. Each of ``streams`` workers (starts staggered over one interval, so
    that the streams' events do not all fall on the same millisecond) opens streams back to
    back until ``duration_s`` is over; for every stream the client records the monotonic time
    at which each ``data:`` line that carries text is read (framing events such as the role
    chunk, the finish chunk and ``[DONE]`` are not tokens), and keeps the gaps between
    consecutive ones. Counting every event would flatter a processor that sends empty
    events on time while it holds the text back. A processor that adds per-message latency
    jitter, queues under load or holds text back (releasing two events together) widens the
    gap distribution; a constant per-event
    delay does not change gaps, and shows in the time to first event instead. The client's own
    scheduling noise is the same for every setup, so the difference of the quantiles against
    Envoy alone (same run, same client) is the delay the processor adds.
    """
    import aiohttp

    result = GapResult(setup, streams, interval_ms)
    body = json.dumps(_body()).encode()
    headers = {
        "content-type": "application/json",
        "x-fake-events": str(events),
        "x-fake-piece-delay-ms": str(interval_ms),
    }
    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration_s
    per_stream_timeout = aiohttp.ClientTimeout(total=events * interval_ms / 1000 * 5 + 30)
    connector = aiohttp.TCPConnector(ssl=context, limit=streams)

    async def worker(session: aiohttp.ClientSession, index: int) -> None:
        await asyncio.sleep(index * interval_ms / 1000 / streams)
        for _ in range(10_000):  # bounded; the deadline ends it first
            if loop.time() >= deadline:
                return
            started = time.perf_counter()
            times: list[float] = []
            last = b""
            try:
                async with session.post(url, data=body, headers=headers,
                                        timeout=per_stream_timeout) as response:
                    async for line in response.content:
                        if line.startswith(b"data:"):
                            if _carries_text(line):
                                times.append(time.perf_counter())
                            last = line
                    ok = response.status == 200 and last.strip() == b"data: [DONE]"
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            if not ok:
                result.failed += 1
                continue
            result.completed += 1
            result.ttfe_ms.append(1000 * (times[0] - started))
            result.gaps_ms.extend(1000 * (b - a) for a, b in itertools.pairwise(times))

    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session, i) for i in range(streams)))
    return result


def run_gaps(rig: Rig, settings: Settings) -> GapResult:
    assert rig.setup is not None
    context = rig.sandbox.ssl_context(WORKLOAD)
    context.check_hostname = False
    return asyncio.run(
        inter_token_gaps(
            f"{rig.sandbox.envoy_url}/v1/chat/completions", context,
            streams=settings.itl_streams, duration_s=settings.itl_s, events=settings.events,
            interval_ms=settings.token_interval_ms, setup=rig.setup,
        )
    )


# --- profile ---------------------------------------------------------------------------


def run_profile(rig: Rig, settings: Settings) -> dict[str, Any]:
    """py-spy samples `weir serve` while k6 drives it; self and inclusive time by function."""
    pid = rig.processor_pid()
    if pid is None:
        return {"error": "no weir process"}
    try:
        spy = tool_binary("py-spy")
    except BenchError as exc:
        return {"error": str(exc)}
    raw = rig.workdir / "weir-profile.txt"
    duration = max(2, int(settings.profile_s))
    common = [spy, "record", "--pid", str(pid), "--duration", str(duration), "--rate", "200",
              "--nonblocking", "--subprocesses"]
    spy_raw = subprocess.Popen(
        [*common, "--format", "raw", "--output", str(raw)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        time.sleep(0.5)
        run_k6(rig, vus=settings.vus, duration_s=duration + 1, events=settings.events,
               label="profile")
    finally:
        try:
            out, _ = spy_raw.communicate(timeout=duration + 30)
        except subprocess.TimeoutExpired:
            spy_raw.kill()
            out, _ = spy_raw.communicate()
    if not raw.exists():
        return {"error": f"py-spy wrote nothing: {out[-500:]}"}
    return summarise_profile(raw.read_text())


def _frame_name(frame: str) -> str:
    # py-spy raw frames: "function (path/to/file.py:LINE)"; drop the line, shorten the path.
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", str(REPO) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})" if path else name


def _area(frames: Sequence[str]) -> str:
    """The coarse place a stack belongs to: its innermost Weir frame, else its leaf."""
    weir = [f for f in frames if "extproc/" in f or "protos/" in f]
    frame = weir[-1] if weir else frames[-1]
    for marker, area in (
        ("extproc/scanner", "scanner (extproc/scanner)"),
        ("extproc/sse", "SSE parser and guard (extproc/sse, sse_guard)"),
        ("extproc/llm", "provider adapters (extproc/llm)"),
        ("extproc/stream", "exchange state machine (extproc/stream)"),
        ("protos/wire", "codec (protos/wire)"),
        ("extproc/server", "server loop: Process, metrics, gRPC reads/writes (extproc/server)"),
        ("extproc/cli", "event loop and grpc.aio outside the handlers"),
        ("extproc/", "other Weir (extproc/*)"),
        ("threading.py", "other threads (native code, e.g. the gRPC poller)"),
    ):
        if marker in frame:
            return area
    return "other"


_SCAFFOLDING = ("asyncio/", "runpy", "threading.py", "extproc/cli.py", "<module>")


def summarise_profile(text: str) -> dict[str, Any]:
    """py-spy ``--format raw`` (collapsed stacks) -> self, inclusive and per-area shares."""
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    modules: Counter[str] = Counter()  # self time by the leaf frame's file
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";") if f]
        frames = [f for f in frames if not f.startswith(("process ", "thread "))] or frames
        if not frames:
            continue
        total += count
        self_time[frames[-1]] += count
        leaf = frames[-1]
        modules[leaf.rsplit(" (", 1)[1].rstrip(")") if leaf.endswith(")") else leaf] += count
        for name in set(frames):
            if not any(marker in name for marker in _SCAFFOLDING):
                inclusive[name] += count
        areas[_area(frames)] += count

    def top(counter: Counter[str], n: int) -> list[tuple[str, float]]:
        return [(name, 100 * c / total) for name, c in counter.most_common(n)] if total else []

    summary = {
        "samples": total,
        "self": top(self_time, 15),
        "inclusive": top(inclusive, 15),
        "areas": top(areas, 12),
        "modules": top(modules, 10),
    }
    summary["quote"] = profile_quote(summary)
    return summary


def profile_quote(summary: dict[str, Any], n: int = 5) -> str:
    """One paragraph of where the time goes, for a closing note to quote as it stands."""
    if not summary.get("samples"):
        return "No samples."

    def listed(rows: Sequence[tuple[str, float]]) -> str:
        return "; ".join(f"{name} {pct:.0f} %" for name, pct in rows[:n])

    return (f"py-spy, {summary['samples']} samples of Weir under k6. By area: "
            f"{listed(summary['areas'])}. By module (self time): {listed(summary['modules'])}. "
            f"Top functions (self time): {listed(summary['self'])}.")


# --- the run ---------------------------------------------------------------------------


@dataclass
class Results:
    settings: Settings
    started: str
    main: dict[str, LoadResult] = field(default_factory=dict)
    locust: dict[str, LoadResult] = field(default_factory=dict)
    curves: dict[str, list[LoadResult]] = field(default_factory=dict)
    gaps: dict[str, GapResult] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    # Per-message time from /metrics deltas: "weir" (main k6 run), "weir_itl" (the
    # inter-token run), "bare" (its own timed k6 pass).
    message_time: dict[str, MessageTime] = field(default_factory=dict)
    message_streams: dict[str, int] = field(default_factory=dict)  # streams of those runs
    hold_back: dict[str, Replay] = field(default_factory=dict)  # "weir", "reference"
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def deny_list_policy(terms: int) -> str:
    """The full policy plus a response deny-list of `terms` distinct words."""
    if terms == 0:
        return FULL_POLICY
    words = ", ".join(f'"codename-{i:04d}"' for i in range(terms))
    return FULL_POLICY + (
        f"      - {{scanner: deny-list, action: redact, terms: [{words}]}}\n"
    )


def use_deny_list(rig: Rig, terms: int, timeout_s: float = 60.0) -> None:
    """Swap Weir's policy by atomic rename and wait until the new digest is in force."""
    import hashlib
    import urllib.request

    text = deny_list_policy(terms)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    path = rig.sandbox.policy_path
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with urllib.request.urlopen(rig.sandbox.weir_admin_url("/readyz"), timeout=5) as r:
            if digest in r.read().decode():
                return
        time.sleep(0.1)
    raise BenchError(f"policy with {terms} deny-list terms not in force after {timeout_s}s")


def measure_setup(rig: Rig, setup: str, settings: Settings, results: Results) -> None:
    started = time.monotonic()
    rig.use(setup)
    rig.smoke()
    log(f"{setup}: up in {time.monotonic() - started:.1f}s; warm-up")
    run_k6(rig, vus=settings.vus, duration_s=settings.warmup_s, events=settings.events,
           label="warmup")
    before = rig.metrics_text()
    main = run_k6(rig, vus=settings.vus, duration_s=settings.main_s, events=settings.events,
                  label="main")
    if before is not None:
        results.message_time[setup] = timed = message_time(before, rig.metrics_text() or "")
        results.message_streams[setup] = main.requests
        log(f"{setup}: message time p50 {1000 * timed.p50_s:.3f} ms,"
            f" p99 {1000 * timed.p99_s:.3f} ms ({timed.count} messages)")
    results.main[setup] = main
    log(f"{setup}: k6 {main.rps:.0f} req/s, p50 {main.p50_ms:.1f} ms, p99 {main.p99_ms:.1f} ms,"
        f" failures {main.failures}, CPU {main.cpu_ms_per_request:.2f} ms/req")
    if settings.curves:
        points: list[tuple[str, int, int, int | None]] = []
        points += [("length", settings.vus, n, None) for n in settings.lengths]
        points += [("size", settings.vus, settings.events, b) for b in settings.sizes]
        points += [("concurrency", c, settings.events, None) for c in settings.concurrency]
        for curve, vus, events, size in points:
            if (vus, events, size) == (settings.vus, settings.events, None):
                point = main  # the main run is this point already
            else:
                point = run_k6(rig, vus=vus, duration_s=settings.curve_s, events=events,
                               event_bytes=size, label=curve)
            results.curves.setdefault(curve, []).append(point)
            log(f"{setup}: {curve} vus={vus} events={events} bytes={size or 'words'}:"
                f" {point.rps:.0f} req/s, p99 {point.p99_ms:.1f} ms")
    if settings.curves and setup == "weir":
        for count in settings.rule_counts:
            use_deny_list(rig, count)
            point = run_k6(rig, vus=settings.vus, duration_s=settings.curve_s,
                           events=settings.events, label="rules")
            point.deny_terms = count
            results.curves.setdefault("rules", []).append(point)
            log(f"weir: rules deny-list terms={count}: {point.rps:.0f} req/s,"
                f" p99 {point.p99_ms:.1f} ms")
        use_deny_list(rig, 0)
    before = rig.metrics_text()
    gaps = run_gaps(rig, settings)
    if before is not None:
        results.message_time[f"{setup}_itl"] = message_time(before, rig.metrics_text() or "")
        results.message_streams[f"{setup}_itl"] = gaps.completed + gaps.failed
    results.gaps[setup] = gaps
    q = gaps.quantiles()
    log(f"{setup}: inter-event gaps p50 {q['p50']:.2f} ms p99 {q['p99']:.2f} ms"
        f" ({len(gaps.gaps_ms)} gaps, {gaps.failed} failed streams)")
    if settings.locust and setup in settings.locust_setups:
        loc = run_locust(rig, users=settings.vus, duration_s=settings.locust_s,
                         events=settings.events)
        results.locust[setup] = loc
        log(f"{setup}: locust {loc.rps:.0f} req/s, p50 {loc.p50_ms:.0f} ms,"
            f" p99 {loc.p99_ms:.0f} ms, failures {loc.failures}")
    if setup == "weir" and settings.profile:
        results.profile = run_profile(rig, settings)
        log(f"weir: profile with {results.profile.get('samples', 0)} samples")
    if setup == "bare":
        time_bare_messages(rig, settings, results)
    rig.leave()


def time_bare_messages(rig: Rig, settings: Settings, results: Results) -> None:
    """The bare processor's own per-message time, in a k6 pass of its own at the main shape.

    It runs with its histogram only here (``--metrics``), so the throughput and CPU
    reference above paid nothing for the timing.
    """
    rig.use("bare", timed_bare=True)
    rig.smoke()
    run_k6(rig, vus=settings.vus, duration_s=settings.warmup_s, events=settings.events,
           label="timed-warmup")
    before = rig.metrics_text() or ""
    timed_run = run_k6(rig, vus=settings.vus, duration_s=settings.curve_s,
                       events=settings.events, label="timed")
    results.message_time["bare"] = timed = message_time(before, rig.metrics_text() or "")
    results.message_streams["bare"] = timed_run.requests
    log(f"bare: message time p50 {1000 * timed.p50_s:.3f} ms,"
        f" p99 {1000 * timed.p99_s:.3f} ms ({timed.count} messages)")


def replay_hold_back(settings: Settings) -> dict[str, Replay]:
    """The inter-token run's stream, replayed through the full policy's guard and Envoy alone.

    The events are the fake upstream's own (`openai_stream_events` of the request the
    gap client sends: `_body()`, ``x-fake-events``), one upstream write each.
    """
    from extproc.llm import provider_named
    from extproc.scan_plan import compile_plans
    from extproc.sse_guard import SseGuard
    from loadtest.fake_upstream import ReplyShape, content_pieces, openai_stream_events, reply_text
    from mesh.policy import parse_policy

    policy = parse_policy(FULL_POLICY, "bench-policy.yaml")
    plan = compile_plans(policy).response(policy.workloads[0])
    provider = provider_named("openai.chat_completions")
    if plan is None or provider is None:
        raise BenchError("the bench policy has no response plan, or no chat provider")
    body = _body()
    events = list(openai_stream_events(
        body, content_pieces(reply_text(body), ReplyShape(events=settings.events))))
    interval = float(settings.token_interval_ms)
    return {
        "weir": replay(events, SseGuard(provider, plan), interval),
        "reference": replay(events, Identity(), interval),
    }


def disturbance_notes(results: Results) -> list[str]:
    notes = []
    for res in [*results.main.values(), *results.locust.values()]:
        if res.foreign_cores > 0.2:
            notes.append(
                f"{res.tool} on {SETUP_TITLES[res.setup]}: other work on the machine used "
                f"{res.foreign_cores:.2f} cores during the run; its figures are disturbed."
            )
    return notes


def busy_cores(result: LoadResult) -> float:
    """Cores in use over a run: the bench's processes (client included) and any other work."""
    ours = (result.cpu_envoy_s + result.cpu_processor_s + result.cpu_upstream_s
            + result.cpu_client_s)
    return ours / (result.wall_s or result.duration_s) + result.foreign_cores


def ratios(results: Results) -> dict[str, float]:
    m, g = results.main, results.gaps
    out: dict[str, float] = {}
    if "weir" in m and "bare" in m and m["bare"].rps:
        out["weir_over_bare"] = m["weir"].rps / m["bare"].rps
    if "weir" in m and "envoy" in m and m["envoy"].rps:
        out["weir_over_envoy"] = m["weir"].rps / m["envoy"].rps
    if "bare" in m and "envoy" in m and m["envoy"].rps:
        out["bare_over_envoy"] = m["bare"].rps / m["envoy"].rps
    if "weir" in m and "bare" in m and m["bare"].requests and m["weir"].requests:
        out["cpu_weir_over_bare"] = (_per(m["weir"], m["weir"].cpu_processor_s)
                                     / _per(m["bare"], m["bare"].cpu_processor_s))
    for setup in ("weir", "bare"):
        if setup in m and m[setup].requests and m[setup].events:
            # One token per content event: processor CPU per request scaled to 1,000 tokens.
            out[f"cpu_ms_per_1000_tokens_{setup}"] = (
                _per(m[setup], m[setup].cpu_processor_s) * 1000 / m[setup].events)
    for key, timed in results.message_time.items():
        out[f"message_p50_ms_{key}"] = 1000 * timed.p50_s
        out[f"message_p99_ms_{key}"] = 1000 * timed.p99_s
    if "weir" in results.message_time:
        out["message_p99_ms"] = out["message_p99_ms_weir"]
    for setup in ("weir", "bare"):
        if setup in g and "envoy" in g:
            mine, base = g[setup].quantiles(), g["envoy"].quantiles()
            for q in ("p50", "p99"):
                out[f"added_itl_{q}_ms_{setup}"] = mine[q] - base[q]
    out.update(delay_split(results))
    return out


# The check's Monte Carlo draws at most this many gaps (bounded time, fixed seed).
_PREDICTION_SAMPLES = 100_000


def delay_split(results: Results) -> dict[str, float]:
    """The added inter-token delay through Weir in two parts, at p50 and p99 (ms).

    With H the replayed gaps through the guard (:mod:`loadtest.hold_back`), E and W
    the gaps measured through Envoy alone and through Weir, and H+E the replayed
    gaps with E's jitter (`with_jitter`: what Envoy alone would deliver had it held
    text back exactly as the guard does):

    - ``itl_schedule_p{q}_ms``: ``Q_q(H) - interval``, the hold-back without noise;
    - ``itl_hold_back_p{q}_ms``: ``Q_q(H+E) - Q_q(E)``;
    - ``itl_processing_p{q}_ms``: ``Q_q(W) - Q_q(H+E)``; the two add up to the
      measured ``Q_q(W) - Q_q(E)``;
    - ``itl_predicted_processing_p{q}_ms``: the check: H+E with every event late by
      an independent draw of Weir's message time in the inter-token run, minus
      ``Q_q(H+E)``: what processing would add if it cost only its own time.
    """
    out: dict[str, float] = {}
    hb, g = results.hold_back, results.gaps
    if "weir" not in hb or "reference" not in hb:
        return out
    interval = hb["weir"].interval_ms
    for q in (50, 99):
        out[f"itl_schedule_p{q}_ms"] = hold_back_part(hb["weir"], hb["reference"], q)
    if "weir" in g and "envoy" in g and g["envoy"].gaps_ms:
        jittered = with_jitter(hb["weir"].gaps_ms, g["envoy"].gaps_ms, interval)
        timed = results.message_time.get("weir_itl")
        predicted = None
        if timed is not None:
            stride = max(1, len(jittered) // _PREDICTION_SAMPLES)
            predicted = predicted_gaps(jittered[::stride], timed.buckets)
        for q in (50, 99):
            base = percentile(jittered, q)
            out[f"itl_hold_back_p{q}_ms"] = base - percentile(g["envoy"].gaps_ms, q)
            out[f"itl_processing_p{q}_ms"] = percentile(g["weir"].gaps_ms, q) - base
            if predicted is not None:
                out[f"itl_predicted_processing_p{q}_ms"] = (
                    percentile(predicted, q) - percentile(jittered[::stride], q))
    delays = hb["weir"].byte_delays_ms
    if delays:
        out["hold_back_per_byte_mean_ms"] = sum(delays) / len(delays)
        out["hold_back_per_byte_p99_ms"] = percentile(delays, 99)
        out["hold_back_per_byte_max_ms"] = max(delays)
    return out


# --- the report ---------------------------------------------------------------------------


def _f(value: float, digits: int = 1) -> str:
    return "—" if value != value else f"{value:,.{digits}f}"  # NaN check


def _per(result: LoadResult, cpu_s: float) -> float:
    return 1000 * cpu_s / result.requests if result.requests else float("nan")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name, command in (
        ("envoy", [tool_binary("envoy"), "--version"]),
        ("k6", [tool_binary("k6"), "version"]),
        ("locust", [tool_binary("locust"), "--version"]),
    ):
        try:
            text = subprocess.run(command, capture_output=True, text=True, timeout=30).stdout
            out[name] = " ".join(text.split()[:4])[:120]
        except (OSError, subprocess.SubprocessError, BenchError):
            out[name] = "?"
    try:
        out["commit"] = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out["commit"] = "?"
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    out["cpu"] = f"{cpu}, {os.cpu_count()} CPUs"
    return out


def write_report(results: Results, out_dir: Path, stamp: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path = out_dir / f"bench-{stamp}.md"
    png_path = out_dir / f"bench-{stamp}.png"
    json_path = out_dir / f"bench-{stamp}.json"
    plot(results, png_path)
    r = ratios(results)
    s = results.settings
    versions = _versions()
    lines: list[str] = []
    add = lines.append
    add(f"# Weir load test, {results.started}")
    add("")
    add(f"`loadtest/run_bench.py`{' --quick' if s.main_s < 10 else ''}: one run, "
        f"{results.elapsed_s / 60:.1f} minutes. Commit {versions['commit']}; {versions['cpu']}; "
        f"Python {versions['python']}; {versions['envoy']}; {versions['k6']}; "
        f"{versions['locust']}.")
    add("")
    add("Every setup: the sandbox's mTLS listener on real Envoy (`--concurrency 2`), the "
        "`checkout` workload's client certificate, the fake upstream on loopback, "
        "`POST /v1/chat/completions` with `stream: true`. ext_proc is FULL_DUPLEX_STREAMED, "
        "fail closed. Weir runs `weir serve` with the full policy below (secrets, PII and "
        "prompt injection on request and response, enforce mode).")
    add("")
    add("## The four figures (issue 12)")
    add("")
    add("| figure | measured | target | moonshot | verdict |")
    add("|---|---|---|---|---|")
    for target_row in target_table(r):
        add("| " + " | ".join(target_row.cells()) + " |")
    add("")
    add(f"CPU per 1,000 streamed tokens (processor CPU only, the main k6 run: {s.events} "
        "content events per stream, one token each): Weir with the full policy "
        f"{_f(r.get('cpu_ms_per_1000_tokens_weir', float('nan')), 1)} ms, the do-nothing "
        f"processor {_f(r.get('cpu_ms_per_1000_tokens_bare', float('nan')), 1)} ms.")
    add("")
    add(message_time_section(results))
    add("## The three ratios (issue 7)")
    add("")
    add("| ratio | measured | target | moonshot |")
    add("|---|---|---|---|")
    add(f"| Weir ÷ bare processor (req/s, k6, {s.vus} VUs, {s.events} events) | "
        f"{_f(r.get('weir_over_bare', float('nan')), 2)}× | ≥ 0.8× | ≥ 1.0× |")
    add(f"| Weir ÷ Envoy alone | {_f(r.get('weir_over_envoy', float('nan')), 2)}× | ≥ 0.5× | — |")
    add(f"| added inter-token delay, p99 at {s.itl_streams} streams | "
        f"{_f(r.get('added_itl_p99_ms_weir', float('nan')), 2)} ms | < 2 ms | < 1 ms |")
    add("")
    add(f"For reference: bare ÷ Envoy alone = {_f(r.get('bare_over_envoy', float('nan')), 2)}×; "
        f"added inter-token delay p50 = {_f(r.get('added_itl_p50_ms_weir', float('nan')), 2)} ms "
        f"(Weir), {_f(r.get('added_itl_p50_ms_bare', float('nan')), 2)} ms p50 / "
        f"{_f(r.get('added_itl_p99_ms_bare', float('nan')), 2)} ms p99 (bare).")
    add("")
    add(f"![plot](bench-{stamp}.png)")
    add("")
    add(f"## k6: {s.vus} VUs, SSE streams of {s.events} events, {s.main_s:g} s each")
    add("")
    add("| setup | req/s | p50 ms | p95 ms | p99 ms | failures | CPU ms/req (Envoy + processor) "
        "| Envoy | processor | upstream (not counted) | k6 (not counted) "
        "| processor RSS MiB (peak) | other load, cores |")
    add("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for setup in SETUPS:
        m = results.main.get(setup)
        if m is None:
            continue
        rss = "—" if not m.rss_kib else f"{m.rss_kib / 1024:.0f} ({m.hwm_kib / 1024:.0f})"
        add(f"| {SETUP_TITLES[setup]} | {_f(m.rps, 0)} | {_f(m.p50_ms)} | {_f(m.p95_ms)} | "
            f"{_f(m.p99_ms)} | {m.failures} / {m.requests} | {_f(m.cpu_ms_per_request, 2)} | "
            f"{_f(_per(m, m.cpu_envoy_s), 2)} | {_f(_per(m, m.cpu_processor_s), 2)} | "
            f"{_f(_per(m, m.cpu_upstream_s), 2)} | {_f(_per(m, m.cpu_client_s), 2)} | {rss} | "
            f"{_f(m.foreign_cores, 2)} |")
    add("")
    add("CPU per request is user + system time from `/proc/PID/stat` of Envoy and of the "
        "processor's process tree over the k6 run, divided by the requests k6 completed. "
        "The upstream's share is shown but not counted. k6 and the upstream share the same "
        "2 cores, so absolute req/s are this machine's; the ratios are the point. "
        "*Other load* is the machine's busy CPU time (`/proc/stat`) outside the bench's own "
        "processes during the run, in cores: anything well above 0 means another job shared "
        "the machine and the figures are disturbed.")
    add("")
    add(f"## Inter-token delay: {s.itl_streams} concurrent streams, one event every "
        f"{s.token_interval_ms} ms, {s.itl_s:g} s per setup")
    add("")
    add("| setup | streams ok (failed) | gaps | gap p50 ms | p90 | p99 | p99.9 | max "
        "| added p50 ms | added p99 ms | time to first event p50 / p99 ms |")
    add("|---|---|---|---|---|---|---|---|---|---|---|")
    base = results.gaps.get("envoy")
    for setup in SETUPS:
        g = results.gaps.get(setup)
        if g is None:
            continue
        q = g.quantiles()
        added50 = q["p50"] - base.quantiles()["p50"] if base else float("nan")
        added99 = q["p99"] - base.quantiles()["p99"] if base else float("nan")
        add(f"| {SETUP_TITLES[setup]} | {g.completed} ({g.failed}) | {len(g.gaps_ms)} | "
            f"{_f(q['p50'], 2)} | {_f(q['p90'], 2)} | {_f(q['p99'], 2)} | {_f(q['p99.9'], 2)} | "
            f"{_f(q['max'], 1)} | {_f(added50, 2) if setup != 'envoy' else '—'} | "
            f"{_f(added99, 2) if setup != 'envoy' else '—'} | "
            f"{_f(percentile(g.ttfe_ms, 50), 1)} / {_f(percentile(g.ttfe_ms, 99), 1)} |")
    add("")
    add("Method: k6 reads a whole response, so the gaps are timed by an asyncio client "
        "(aiohttp, HTTP/1.1, the same client certificate). The upstream writes one event every "
        f"{s.token_interval_ms} ms (`x-fake-piece-delay-ms`), a model's token rate; the "
        f"{s.itl_streams} streams start staggered over one interval and run back to back. For "
        "every `data:` line that carries text (not the role or finish chunk, not `[DONE]`) the "
        "client records the time it was read, and keeps the gap to the previous one. Added "
        "inter-token delay at a quantile is that quantile of the gaps "
        "through the processor minus the same quantile through Envoy alone, measured in the "
        "same run by the same client (the client's own scheduling noise is in both). "
        "Jitter, queueing and held-back text (two events released together: one short gap, "
        "one long) widen the distribution; a constant per-event delay shifts the whole stream "
        "and shows in the time to first event instead. Weir's scanner holds a word until the "
        "next character shows that it cannot become a match (an e-mail address may follow any "
        "word), and an event whose text it still holds is held whole: it goes out as it came, "
        "with the next event that settles its text (or rebuilt, when a redaction changes "
        "it). The p99 gap therefore includes that hold-back (one "
        "token interval when a sentence end waits for the next word), which is the price of "
        "never releasing part of a match, not processing time.")
    add("")
    add(delay_split_section(results))
    if results.locust:
        add(f"## locust vs k6 ({s.vus} users, {s.events} events)")
        add("")
        add("| setup | tool | duration s | req/s | p50 ms | p95 ms | p99 ms | failures | "
            "CPU ms/req |")
        add("|---|---|---|---|---|---|---|---|---|")
        for setup in SETUPS:
            for res in (results.main.get(setup), results.locust.get(setup)):
                if res is None:
                    continue
                add(f"| {SETUP_TITLES[setup]} | {res.tool} | {res.duration_s:g} | "
                    f"{_f(res.rps, 0)} | {_f(res.p50_ms)} | {_f(res.p95_ms)} | "
                    f"{_f(res.p99_ms)} | {res.failures} / {res.requests} | "
                    f"{_f(res.cpu_ms_per_request, 2)} |")
        loc = results.locust
        shape = []
        for a, b in (("weir", "envoy"), ("weir", "bare"), ("bare", "envoy")):
            if a in loc and b in loc and loc[b].rps and a in results.main and b in results.main:
                shape.append(f"{a} ÷ {b}: locust {loc[a].rps / loc[b].rps:.2f}×, "
                             f"k6 {results.main[a].rps / results.main[b].rps:.2f}×")
        add("")
        add("Locust (one gevent process, HTTP/1.1, FastHttpUser) is a heavier client than k6 "
            "on these 2 cores, so its absolute numbers are lower; compare the shape. "
            + ("Ratios: " + "; ".join(shape) + "." if shape else ""))
        add("")
    if results.curves:
        add("## Scaling curves (k6)")
        add("")
        add(f"Each point is a separate {s.curve_s:g} s k6 run per setup (the point equal to the "
            "main run reuses it). req/s, with p99 latency in ms and CPU ms/request "
            "(Envoy + processor) in brackets.")
        for curve, title, key in (
            ("length", "stream length (events per stream)", "events"),
            ("size", f"event size (bytes per content event, {s.events} events)", "event_bytes"),
            ("concurrency", f"concurrency (k6 VUs, {s.events} events)", "vus"),
        ):
            points = results.curves.get(curve, [])
            if not points:
                continue
            add("")
            add(f"### {title}")
            add("")
            add("| " + key + " | " + " | ".join(SETUP_TITLES[x] for x in SETUPS)
                + " | Weir ÷ Envoy | Weir ÷ bare |")
            add("|---" * (len(SETUPS) + 3) + "|")
            for value in sorted({getattr(p, key) for p in points}):
                row = {p.setup: p for p in points if getattr(p, key) == value}
                cells = []
                for setup in SETUPS:
                    p = row.get(setup)
                    cells.append("—" if p is None else
                                 f"{_f(p.rps, 0)} ({_f(p.p99_ms, 0)} ms; "
                                 f"{_f(p.cpu_ms_per_request, 2)})")
                w, e, b = row.get("weir"), row.get("envoy"), row.get("bare")
                we = f"{w.rps / e.rps:.2f}×" if w and e and e.rps else "—"
                wb = f"{w.rps / b.rps:.2f}×" if w and b and b.rps else "—"
                add(f"| {value} | " + " | ".join(cells) + f" | {we} | {wb} |")
        rules = sorted(results.curves.get("rules", []), key=lambda p: p.deny_terms)
        if rules:
            add("")
            add(f"### number of rules (custom deny-list terms on the response, Weir only, "
                f"{s.vus} VUs, {s.events} events)")
            add("")
            add("Each count is put in force by a live policy reload (atomic rename).")
            add("")
            add("| deny-list terms | Weir req/s | p99 ms | CPU ms/req |")
            add("|---|---|---|---|")
            for p in rules:
                add(f"| {p.deny_terms} | {_f(p.rps, 0)} | {_f(p.p99_ms, 0)} | "
                    f"{_f(p.cpu_ms_per_request, 2)} |")
        add("")
    if results.profile:
        prof = results.profile
        add(f"## Where Weir's time goes (py-spy, {s.profile_s:g} s under k6 {s.vus} VUs)")
        add("")
        if "error" in prof:
            add(f"No profile: {prof['error']}")
        else:
            add(f"{prof['samples']} samples of Python stacks (200 Hz, all threads, idle excluded; "
                "native code such as the gRPC core is not broken down). By area (innermost Weir "
                "frame of each sample):")
            add("")
            add("| area | % of samples |")
            add("|---|---|")
            for name, pct in prof["areas"]:
                add(f"| {name} | {pct:.1f} |")
            add("")
            add("Top functions by self time:")
            add("")
            add("| function | self % |")
            add("|---|---|")
            for name, pct in prof["self"]:
                add(f"| `{name}` | {pct:.1f} |")
            add("")
            add("Self time by module (the file of the innermost frame):")
            add("")
            add("| module | self % |")
            add("|---|---|")
            for name, pct in prof.get("modules", []):
                add(f"| `{name}` | {pct:.1f} |")
            add("")
            add("Top functions by inclusive time:")
            add("")
            add("| function | inclusive % |")
            add("|---|---|")
            for name, pct in prof["inclusive"]:
                add(f"| `{name}` | {pct:.1f} |")
            add("")
            add("In one paragraph, to quote:")
            add("")
            add(f"> {prof['quote']}")
        add("")
    add("## The Weir policy used")
    add("")
    add("```yaml")
    add(FULL_POLICY.rstrip())
    add("```")
    add("")
    if results.notes:
        add("## Notes")
        add("")
        lines.extend(f"- {note}" for note in results.notes)
        add("")
    md_path.write_text("\n".join(lines) + "\n")
    json_path.write_text(json.dumps(_as_json(results), indent=1))
    return md_path, png_path


def message_time_section(results: Results) -> str:
    """The per-message time table and how it is read, as Markdown."""
    s, lines = results.settings, list[str]()
    add = lines.append
    add(f"## Per-message time (`weir_message_processing_seconds`, {s.vus} streams)")
    add("")
    if not results.message_time:
        add("Not measured (no processor setup in this run).")
        add("")
        return "\n".join(lines)
    add("| processor, run | messages | per stream | p50 ms | p99 ms | ≤ 0.3 ms | ≤ 1 ms |")
    add("|---|---|---|---|---|---|---|")
    titles = {
        "weir": f"Weir, the main k6 run ({s.vus} VUs, {s.main_s:g} s)",
        "weir_itl": f"Weir, the inter-token run ({s.itl_streams} paced streams)",
        "bare": f"do-nothing processor, its own timed k6 pass ({s.vus} VUs, {s.curve_s:g} s)",
    }
    for key in ("weir", "weir_itl", "bare"):
        t = results.message_time.get(key)
        if t is None:
            continue
        p99 = ("> " if t.p99_above_last_bound else "") + _f(1000 * t.p99_s, 3)
        streams = results.message_streams.get(key, 0)
        per = _f(t.count / streams, 1) if streams else "—"
        add(f"| {titles[key]} | {t.count:,} | {per} | {_f(1000 * t.p50_s, 3)} | {p99} | "
            f"{_f(100 * t.share_within_300us, 2)} % | {_f(100 * t.share_within_1ms, 2)} % |")
    add("")
    add("Method: the histogram is scraped from the processor's `/metrics` (Weir's admin "
        "port) just before and just after the run; the difference of the cumulative bucket "
        "counts is the run's own messages (smoke request, warm-up and earlier runs cancel "
        "out). A quantile is read as Prometheus's `histogram_quantile` does: the bucket its "
        "rank falls in, linearly interpolated between the bucket's bounds. Below 1 ms the "
        "buckets are 25 to 100 µs apart, and 0.3 ms and 1 ms are bounds, so the shares "
        "≤ 0.3 ms and ≤ 1 ms are exact and say whether the p99 is under each without "
        "interpolation. Weir times each message from its decoded event to its encoded "
        "answers (decide, scan, encode; the budget store's answer when there is one). The "
        "do-nothing processor times its `respond` (building the answer); it runs with that "
        "histogram only in its own pass, so its throughput and CPU above paid nothing for it. "
        "*Per stream* is messages ÷ streams completed in the run (the stream's headers, "
        "bodies and trailers, both ways): unpaced, under k6, Envoy hands the processor "
        f"several of a stream's {s.events} events per message, and a slower processor gets "
        "fewer, larger messages, so a message's time grows with the events it carries; "
        "paced one event per write (the inter-token run), a message is about one event. "
        "The time is wall time (`perf_counter`): on a machine with every core busy, a "
        "message that loses its core mid-way waits for the scheduler (a step near 4 ms, one "
        "time slice), which the p99 of a saturated run shows.")
    main = results.main.get("weir")
    if main is not None and (main.wall_s or main.duration_s):
        busy = busy_cores(main)
        add("")
        add(f"During the main Weir run the machine had {busy:.2f} of {os.cpu_count()} cores "
            f"busy ({main.foreign_cores:.2f} of them other work than the bench's).")
    add("")
    return "\n".join(lines)


def delay_split_section(results: Results) -> str:
    """The added inter-token delay split into hold-back and processing, as Markdown."""
    lines: list[str] = []
    add = lines.append
    hb = results.hold_back
    add("### The added delay in two parts: hold-back and processing")
    add("")
    if "weir" not in hb:
        add("Not computed (no replay in this run).")
        add("")
        return "\n".join(lines)
    split = delay_split(results)
    nan = float("nan")
    add("| quantile | added, measured (Weir − Envoy) | hold-back part | processing part "
        "| check: processing predicted from message time alone "
        "| the hold-back schedule alone (replay, no noise) |")
    add("|---|---|---|---|---|---|")
    for q in (50, 99):
        measured = split.get(f"itl_processing_p{q}_ms", nan) + split.get(
            f"itl_hold_back_p{q}_ms", nan)
        add(f"| p{q} | {_f(measured, 2)} ms | {_f(split.get(f'itl_hold_back_p{q}_ms', nan), 2)}"
            f" ms | {_f(split.get(f'itl_processing_p{q}_ms', nan), 2)} ms | "
            f"{_f(split.get(f'itl_predicted_processing_p{q}_ms', nan), 2)} ms | "
            f"{_f(split[f'itl_schedule_p{q}_ms'], 2)} ms |")
    add("")
    w, ref = hb["weir"], hb["reference"]
    if w.byte_delays_ms is not None:
        add(f"Per released text byte, the hold-back is {_f(split['hold_back_per_byte_mean_ms'], 1)}"
            f" ms on average, {_f(split['hold_back_per_byte_p99_ms'], 1)} ms at p99 and "
            f"{_f(split['hold_back_per_byte_max_ms'], 1)} ms at most ({w.released_text_bytes} "
            f"bytes of one {w.writes}-write stream): the latency it adds to each token, a "
            "shift of the stream that the gaps do not see (the first text goes out "
            f"{_f(w.first_text_ms - ref.first_text_ms, 0)} ms later than through Envoy alone).")
    else:
        add("The guard rewrote the replayed text (a redaction), so bytes could not be matched "
            "to the writes that carried them; the gap split above still holds.")
    add("")
    add("Method: the hold-back is computed, not measured. The very events the fake "
        "upstream sends in this run (one write each, one interval apart) are fed write by "
        "write through an in-process `SseGuard` with the full policy's response plan, with "
        "zero processing time: what it releases on write k goes out at k × interval, and "
        "the client's measure (gaps between text-carrying `data:` lines) is applied to that "
        "output (H). Through a processor that releases each write at once, every gap is one "
        "interval; the last column is H's quantile minus the interval. Measured gaps carry "
        "noise (client, upstream timer, Envoy) that the replay has not, and quantiles do not "
        "subtract across the two: so H is convolved with the jitter measured through Envoy "
        "alone (every replayed gap plus every measured Envoy gap's deviation from the "
        "interval; a gap of 0, two events out on one write, stays 0): H+E, the gaps Envoy "
        "alone would deliver had it held text back exactly as the guard does. The hold-back "
        "part at a quantile is Q(H+E) − Q(Envoy, measured); the processing part is "
        "Q(Weir, measured) − Q(H+E); the two add up to the measured added delay. The check: "
        "H+E with each event late by an independent draw from Weir's message-time "
        "histogram of this very run (uniform within a bucket), minus Q(H+E): what "
        "processing would add if it cost only its own time. Where the processing part is "
        "well above it, the rest is queueing behind the other streams' messages on one "
        "core and the gRPC hop (the do-nothing processor's added delay above is the hop "
        "alone); a small negative part is noise.")
    add("")
    return "\n".join(lines)


def _as_json(results: Results) -> dict[str, Any]:
    def load(res: LoadResult) -> dict[str, Any]:
        return asdict(res) | {"cpu_ms_per_request": res.cpu_ms_per_request}

    return {
        "settings": asdict(results.settings),
        "started": results.started,
        "elapsed_s": results.elapsed_s,
        "ratios": ratios(results),
        "main": {k: load(v) for k, v in results.main.items()},
        "locust": {k: load(v) for k, v in results.locust.items()},
        "curves": {k: [load(p) for p in v] for k, v in results.curves.items()},
        "gaps": {
            k: {"completed": g.completed, "failed": g.failed, "count": len(g.gaps_ms),
                "quantiles_ms": g.quantiles(),
                "ttfe_p50_ms": percentile(g.ttfe_ms, 50), "ttfe_p99_ms": percentile(g.ttfe_ms, 99)}
            for k, g in results.gaps.items()
        },
        "profile": results.profile,
        "targets": [
            {"figure": row.target.key, "title": row.target.title, "measured": row.measured,
             "target": f"{row.target.compare} {row.target.target:g}",
             "moonshot": f"{row.target.compare} {row.target.moonshot:g}", "unit": row.target.unit,
             "verdict": row.verdict}
            for row in target_table(ratios(results))
        ],
        "message_time": {k: v.as_json() | {"streams": results.message_streams.get(k)}
                         for k, v in results.message_time.items()},
        "hold_back": {
            k: {"interval_ms": v.interval_ms, "writes": v.writes,
                "gaps": len(v.gaps_ms), "first_text_ms": v.first_text_ms,
                "source_text_bytes": v.source_text_bytes,
                "released_text_bytes": v.released_text_bytes,
                "gap_quantiles_ms": {f"p{q}": percentile(v.gaps_ms, q) for q in (50, 90, 99)},
                "byte_delay_quantiles_ms": None if v.byte_delays_ms is None else
                {f"p{q}": percentile(v.byte_delays_ms, q) for q in (50, 90, 99)}}
            for k, v in results.hold_back.items()
        },
        "notes": results.notes,
    }


def plot(results: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    colours = {"envoy": "#4c72b0", "bare": "#dd8452", "weir": "#55a868"}
    fig, axes = plt.subplots(2, 3, figsize=(16, 9))
    setups = [s for s in SETUPS if s in results.main]

    ax = axes[0][0]
    x = np.arange(len(setups))
    ax.bar(x - 0.2, [results.main[s].rps for s in setups], 0.4, label="k6",
           color=[colours[s] for s in setups])
    loc = [results.locust[s].rps if s in results.locust else 0 for s in setups]
    ax.bar(x + 0.2, loc, 0.4, label="locust", color=[colours[s] for s in setups], alpha=0.45,
           hatch="//")
    ax.set_xticks(x, [SETUP_TITLES[s].replace(" + ", "\n+ ") for s in setups], fontsize=8)
    ax.set_ylabel("requests/s")
    ax.set_title(f"throughput ({results.settings.vus} streams, {results.settings.events} events)")
    ax.legend(fontsize=8)

    ax = axes[0][1]
    for i, q in enumerate(("p50_ms", "p95_ms", "p99_ms")):
        ax.bar(x + (i - 1) * 0.27, [getattr(results.main[s], q) for s in setups], 0.27,
               label=q.split("_")[0], color=[colours[s] for s in setups], alpha=1 - 0.3 * i)
    ax.set_xticks(x, [SETUP_TITLES[s].replace(" + ", "\n+ ") for s in setups], fontsize=8)
    ax.set_ylabel("request latency, ms")
    ax.set_title("k6 request latency p50 / p95 / p99")

    ax = axes[0][2]
    for s in SETUPS:
        g = results.gaps.get(s)
        if g is None or not g.gaps_ms:
            continue
        data = np.sort(np.asarray(g.gaps_ms))
        tail = 1 - np.arange(len(data)) / len(data)
        ax.plot(data, tail, label=SETUP_TITLES[s], color=colours[s])
    ax.set_yscale("log")
    ax.set_xlabel("gap between consecutive SSE events at the client, ms")
    ax.set_ylabel("fraction of gaps ≥ x")
    ax.set_title(f"inter-token gaps ({results.settings.itl_streams} streams, "
                 f"{results.settings.token_interval_ms} ms pacing)")
    ax.legend(fontsize=8)

    for ax, (curve, key, label, logx) in zip(
        axes[1],
        (("length", "events", "events per stream", True),
         ("size", "event_bytes", "bytes per event", True),
         ("concurrency", "vus", "concurrent streams (VUs)", True)),
        strict=True,
    ):
        points = results.curves.get(curve, [])
        for s in SETUPS:
            mine = sorted((p for p in points if p.setup == s), key=lambda p: getattr(p, key))
            if mine:
                ax.plot([getattr(p, key) for p in mine], [p.rps for p in mine], "o-",
                        label=SETUP_TITLES[s], color=colours[s])
        if logx:
            ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("requests/s")
        ax.set_title(f"scaling: {label}")
        if points:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# --- entry point ----------------------------------------------------------------------------


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a ~2 minute run (fewer, shorter)")
    parser.add_argument("--out", type=Path, default=REPO / "reports", help="report directory")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep certificates, configs, logs and raw results here")
    parser.add_argument("--setups", default=",".join(SETUPS),
                        help="comma-separated subset of envoy,bare,weir")
    parser.add_argument("--no-curves", action="store_true")
    parser.add_argument("--no-locust", action="store_true")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--token-interval-ms", type=int, default=None,
                        help="upstream pacing for the inter-token delay run (default 20)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = QUICK if args.quick else Settings()
    overrides: dict[str, Any] = {}
    if args.no_curves:
        overrides["curves"] = False
    if args.no_locust:
        overrides["locust"] = False
    if args.no_profile:
        overrides["profile"] = False
    if args.token_interval_ms is not None:
        if not 1 <= args.token_interval_ms <= 1000:
            raise SystemExit("--token-interval-ms must be 1..1000")
        overrides["token_interval_ms"] = args.token_interval_ms
    if overrides:
        settings = Settings(**(asdict(settings) | overrides))
    setups = [s.strip() for s in args.setups.split(",") if s.strip()]
    if not setups or any(s not in SETUPS for s in setups):
        raise SystemExit(f"--setups: choose from {','.join(SETUPS)}")
    for name in ("k6", "envoy") + (("locust",) if settings.locust else ()):
        tool_binary(name)

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    results = Results(settings, datetime.datetime.now().isoformat(timespec="seconds"))
    own_workdir = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="weir-bench-")) if own_workdir else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    began = time.monotonic()
    rig = Rig(workdir)
    try:
        results.hold_back = replay_hold_back(settings)
    except Exception as exc:  # the report says so; the load runs are still worth having
        results.notes.append(f"hold-back replay failed, no delay split: {exc!r}")
    try:
        log(f"workdir {workdir}; starting the fake upstream")
        rig.start_upstream()
        for setup in setups:
            measure_setup(rig, setup, settings, results)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"run_bench: {exc}", file=sys.stderr)
        return 1
    finally:
        rig.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    results.elapsed_s = time.monotonic() - began
    results.notes.extend(disturbance_notes(results))
    md, png = write_report(results, args.out, stamp)
    if own_workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    r = ratios(results)
    print()
    print(f"report: {md}")
    print(f"plot:   {png}")
    for row in target_table(r):
        title, measured, target, moonshot, verdict = row.cells()
        print(f"{title}: {measured}  (target {target}, moonshot {moonshot}): {verdict}")
    bare_p99 = r.get("message_p99_ms_bare", float("nan"))
    print(f"  do-nothing processor's own message time p99: {_f(bare_p99, 3)} ms")
    print(f"CPU per 1,000 streamed tokens: Weir full policy "
          f"{_f(r.get('cpu_ms_per_1000_tokens_weir', float('nan')), 1)} ms, do-nothing "
          f"processor {_f(r.get('cpu_ms_per_1000_tokens_bare', float('nan')), 1)} ms")
    for q in (50, 99):
        print(f"added inter-token delay p{q} at {settings.itl_streams} streams: "
              f"{_f(r.get(f'added_itl_p{q}_ms_weir', float('nan')), 2)} ms = hold-back "
              f"{_f(r.get(f'itl_hold_back_p{q}_ms', float('nan')), 2)} ms + processing "
              f"{_f(r.get(f'itl_processing_p{q}_ms', float('nan')), 2)} ms (processing "
              f"predicted from message time alone: "
              f"{_f(r.get(f'itl_predicted_processing_p{q}_ms', float('nan')), 2)} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
