"""`make soak`: mixed traffic through the mesh sandbox for a long while, watching Weir's
resident memory and open file descriptors.

It starts its own sandbox (real Envoy, mTLS, `weir serve`, the fake upstream) and runs
worker threads that call, in turn:

- allowed: `checkout`, streamed and not, a harmless reply;
- redacted: `checkout`, a reply carrying an AWS key id, which comes back redacted;
- blocked: `notebook`, a streamed reply with the key (the in-band error event), and a
  `checkout` prompt carrying it (a 403 before the upstream);
- denied: `etl`, an identity no workload matches (a 403).

Every outcome is checked; a call that does not end as its kind should is counted as
unexpected. Every `--sample-seconds` it samples Weir's RSS (/proc/PID/status) and
open fds (/proc/PID/fd). After `--warmup-minutes` (JIT, caches, connection pools),
the verdict compares the median of the last three samples with the median of the
first three after warm-up: flat means within 10% for both, and no unexpected call.

The report, `reports/soak-<timestamp>.md`, carries the series and the verdict.
Exit status 0 when flat, 1 otherwise.

Run: `python loadtest/soak.py --minutes 10` (or `make soak SOAK_MINUTES=10`).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import openai

from mesh.sandbox import MeshSandbox

AWS_KEY = "AKIAQ3EGUKZW5XYT7M2P"
REPLY_WITH_KEY = f"The deploy key is {AWS_KEY}, keep it safe. " + "More text follows. " * 5
PROMPT = [{"role": "user", "content": "Tell me something."}]
KINDS = ("allowed", "allowed-stream", "redacted", "blocked-stream", "blocked-prompt", "denied")
TOLERANCE = 0.10


def reply_headers(text: str, **knobs: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-fake-reply-b64": base64.b64encode(text.encode()).decode(),
        **{k.replace("_", "-"): v for k, v in knobs.items()},
    }


def _body(stream: bool, prompt: str = "Tell me something.") -> bytes:
    return json.dumps({"model": "gpt-4o", "stream": stream,
                       "messages": [{"role": "user", "content": prompt}]}).encode()


@dataclass
class Traffic:
    sandbox: MeshSandbox
    outcomes: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def call(self, http: dict[str, openai.DefaultHttpxClient], kind: str) -> str | None:
        """One call of `kind`; None when it ended as it should, else what went wrong."""
        url = f"{self.sandbox.envoy_url}/v1/chat/completions"
        if kind == "allowed":
            r = http["checkout"].post(url, content=_body(False),
                                      headers=reply_headers("All good here."))
            ok = r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == (
                "All good here.")
        elif kind == "allowed-stream":
            r = http["checkout"].post(url, content=_body(True), headers=reply_headers(
                "All good here, streamed in pieces.", x_fake_token_bytes="4"))
            ok = r.status_code == 200 and r.text.rstrip().endswith("data: [DONE]")
        elif kind == "redacted":
            r = http["checkout"].post(url, content=_body(True), headers=reply_headers(
                REPLY_WITH_KEY, x_fake_token_bytes="5"))
            ok = r.status_code == 200 and AWS_KEY not in r.text and "REDACTED" in r.text
        elif kind == "blocked-stream":
            r = http["notebook"].post(url, content=_body(True), headers=reply_headers(
                REPLY_WITH_KEY, x_fake_token_bytes="5"))
            ok = (r.status_code == 200 and AWS_KEY not in r.text
                  and "weir_response_blocked" in r.text)
        elif kind == "blocked-prompt":
            r = http["checkout"].post(url, content=_body(False, f"my key {AWS_KEY}"),
                                      headers=reply_headers("unused"))
            ok = r.status_code == 403 and "aws-access-key-id" in r.text
        else:
            r = http["etl"].post(url, content=_body(False), headers=reply_headers("unused"))
            ok = r.status_code == 403 and "no workload matches" in r.text
        return None if ok else f"{kind}: {r.status_code} {r.text[:160]!r}"

    def worker(self, n: int) -> None:
        http = {w: openai.DefaultHttpxClient(verify=self.sandbox.ssl_context(w), timeout=60)
                for w in ("checkout", "notebook", "etl")}
        i = n
        try:
            while not self.stop.is_set():
                kind = KINDS[i % len(KINDS)]
                i += 1
                try:
                    problem = self.call(http, kind)
                except Exception as exc:  # every failure is an outcome
                    problem = f"{kind}: {exc!r}"
                with self.lock:
                    self.outcomes[kind if problem is None else "unexpected"] += 1
                    if problem is not None and len(self.unexpected) < 50:
                        self.unexpected.append(problem)
        finally:
            for client in http.values():
                client.close()


@dataclass(frozen=True)
class Sample:
    elapsed: float
    rss_kib: int
    fds: int
    calls: int
    unexpected: int


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def weir_pid(sandbox: MeshSandbox) -> int:
    pids = getattr(sandbox, "pids", None)
    if pids is not None:
        return int(pids()["weir"])
    return int(sandbox._weir.popen.pid)  # type: ignore[union-attr]  # older MeshSandbox


def drift(series: list[int]) -> tuple[float, float, float]:
    """(baseline, end, relative change): medians of the first and last three samples."""
    baseline = statistics.median(series[:3])
    end = statistics.median(series[-3:])
    return baseline, end, (end - baseline) / baseline if baseline else 0.0


def write_report(path: Path, args: argparse.Namespace, samples: list[Sample],
                 warm: list[Sample], traffic: Traffic, verdict: str,
                 figures: dict[str, tuple[float, float, float]]) -> None:
    lines = [
        f"# Soak {time.strftime('%Y-%m-%d %H:%M:%S')}",
        "",
        f"{args.minutes} min of mixed traffic through the sandbox (real Envoy 1.40, mTLS, "
        f"`weir serve`), {args.workers} client threads; Weir sampled every "
        f"{args.sample_seconds} s; warm-up {args.warmup_minutes} min.",
        "",
        f"**Verdict: {verdict}** (flat = RSS and open fds within {TOLERANCE:.0%} after "
        "warm-up, median of the last three samples against the first three, and no "
        "unexpected outcome).",
        "",
        "| after warm-up | baseline | end | drift |",
        "|---|---|---|---|",
    ]
    for name, (baseline, end, change) in figures.items():
        lines.append(f"| {name} | {baseline:,.0f} | {end:,.0f} | {change:+.1%} |")
    total = sum(v for k, v in traffic.outcomes.items() if k != "unexpected")
    lines += ["", "| outcome | calls |", "|---|---|"]
    for kind in (*KINDS, "unexpected"):
        lines.append(f"| {kind} | {traffic.outcomes.get(kind, 0)} |")
    lines += ["", f"{total} calls as expected in all.", ""]
    if traffic.unexpected:
        lines += ["Unexpected outcomes (first 50):", ""]
        lines += [f"- `{u}`" for u in traffic.unexpected]
        lines.append("")
    lines += ["## Series", "", "| t (s) | RSS (MiB) | open fds | calls | unexpected | |",
              "|---|---|---|---|---|---|"]
    for s in samples:
        mark = "" if s in warm else "warm-up"
        lines.append(f"| {s.elapsed:.0f} | {s.rss_kib / 1024:.1f} | {s.fds} | {s.calls} | "
                     f"{s.unexpected} | {mark} |")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warmup-minutes", type=float, default=None,
                        help="default: a fifth of the run, at most 2 minutes")
    parser.add_argument("--sample-seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--reports", default="reports", help="directory for the report")
    args = parser.parse_args(argv)
    if args.warmup_minutes is None:
        args.warmup_minutes = min(2.0, args.minutes / 5)

    workdir = Path(tempfile.mkdtemp(prefix="weir-soak-"))
    print(f"soak: starting the sandbox in {workdir}", flush=True)
    with MeshSandbox(workdir) as sandbox:
        pid = weir_pid(sandbox)
        traffic = Traffic(sandbox)
        threads = [threading.Thread(target=traffic.worker, args=(n,), daemon=True)
                   for n in range(args.workers)]
        for thread in threads:
            thread.start()
        started = time.monotonic()
        samples: list[Sample] = []
        try:
            while (elapsed := time.monotonic() - started) < args.minutes * 60:
                with traffic.lock:
                    calls = sum(traffic.outcomes.values())
                    unexpected = traffic.outcomes.get("unexpected", 0)
                sample = Sample(elapsed, rss_kib(pid), open_fds(pid), calls, unexpected)
                samples.append(sample)
                print(f"soak: t={elapsed:5.0f}s rss={sample.rss_kib / 1024:7.1f} MiB "
                      f"fds={sample.fds:4d} calls={calls} unexpected={unexpected}", flush=True)
                time.sleep(min(args.sample_seconds,
                               max(0.0, args.minutes * 60 - (time.monotonic() - started))))
            with traffic.lock:
                calls = sum(traffic.outcomes.values())
                unexpected = traffic.outcomes.get("unexpected", 0)
            samples.append(Sample(time.monotonic() - started, rss_kib(pid), open_fds(pid),
                                  calls, unexpected))
        finally:
            traffic.stop.set()
            for thread in threads:
                thread.join(60)

    warm = [s for s in samples if s.elapsed >= args.warmup_minutes * 60] or samples
    figures = {
        "Weir RSS (KiB)": drift([s.rss_kib for s in warm]),
        "Weir open fds": drift([s.fds for s in warm]),
    }
    flat = all(abs(change) <= TOLERANCE for _, _, change in figures.values())
    verdict = "flat" if flat and not traffic.unexpected else (
        "NOT flat" if not flat else "unexpected outcomes")
    report = Path(args.reports) / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.md"
    write_report(report, args, samples, warm, traffic, verdict, figures)
    for name, (baseline, end, change) in figures.items():
        print(f"soak: {name}: {baseline:,.0f} -> {end:,.0f} ({change:+.1%})")
    print(f"soak: {sum(traffic.outcomes.values())} calls, "
          f"{traffic.outcomes.get('unexpected', 0)} unexpected; verdict {verdict}; "
          f"report {report}")
    return 0 if verdict == "flat" else 1


if __name__ == "__main__":
    sys.exit(main())
