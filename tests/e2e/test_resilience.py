"""Weir hurt: killed mid-stream, drained with streams open, reloaded under load, and
slow or vanishing peers. Real Envoy 1.40, mTLS, `weir serve` and the fake upstream.

The sandbox policy: `notebook` (research) blocks secrets in answers, `checkout`
redacts them, `etl` matches no workload and is denied. `weir serve` runs with
`--drain-grace 5` and `--reload-interval 0.2`.
"""

from __future__ import annotations

import base64
import json
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx
import openai
import pytest
from weir_admin import eventually, get, metric, write_atomically

from loadtest.run_bench import k6_summary, start_k6
from mesh.sandbox import SANDBOX_POLICY, MeshSandbox

AWS_KEY = "AKIAQ3EGUKZW5XYT7M2P"
PROMPT = [{"role": "user", "content": "Tell me what you know."}]
GRACE = 5.0  # MeshSandbox starts `weir serve --drain-grace 5`





def reply_headers(text: str, **knobs: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-fake-reply-b64": base64.b64encode(text.encode()).decode(),
        **{k.replace("_", "-"): v for k, v in knobs.items()},
    }


def chat_body(stream: bool, model: str = "gpt-4o") -> bytes:
    return json.dumps({"model": model, "stream": stream, "messages": PROMPT}).encode()


@dataclass
class RawStream:
    """One streamed chat completion read in a thread: every byte received, and how it ended."""

    mesh: MeshSandbox
    workload: str
    headers: dict[str, str]
    read_timeout: float = 60.0  # a client that gives up after this long without a byte
    received: bytearray = field(default_factory=bytearray)
    status: int | None = None
    error: BaseException | None = None
    ended_at: float | None = None
    first_bytes: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    def start(self) -> RawStream:
        threading.Thread(target=self._run, daemon=True).start()
        assert self.first_bytes.wait(30), f"no bytes arrived: {self.error!r}"
        return self

    def _run(self) -> None:
        try:
            with (
                httpx.Client(verify=self.mesh.ssl_context(self.workload),
                             timeout=httpx.Timeout(60, read=self.read_timeout)) as http,
                http.stream("POST", f"{self.mesh.envoy_url}/v1/chat/completions",
                            content=chat_body(True), headers=self.headers) as response,
            ):
                self.status = response.status_code
                for piece in response.iter_raw():
                    self.received += piece
                    self.first_bytes.set()
        except BaseException as exc:
            self.error = exc
        finally:
            self.ended_at = time.monotonic()
            self.first_bytes.set()
            self.done.set()

    def wait(self, timeout: float = 60) -> RawStream:
        assert self.done.wait(timeout), "the stream did not end"
        return self

    @property
    def text(self) -> str:
        return self.received.decode(errors="replace")


def contents(raw: str) -> str:
    out = []
    for line in raw.splitlines():
        if line.startswith("data: {"):
            choices = json.loads(line[6:]).get("choices") or [{}]
            out.append(choices[0].get("delta", {}).get("content") or "")
    return "".join(out)


# --- 1. crash mid-stream ---------------------------------------------------------------


def test_weir_killed_mid_stream_resets_the_client_and_releases_no_unjudged_byte(
    private_sandbox: MeshSandbox,
) -> None:
    """Pins Envoy 1.40 with `failure_mode_allow: false`: when the ext_proc stream dies
    after the response headers went out, Envoy resets the downstream stream. Over
    HTTP/1.1 the client sees the connection close inside the chunked body
    (httpx.RemoteProtocolError), never a clean end, and never a byte Weir did not release,
    although the upstream goes on sending, the secret included."""
    mesh = private_sandbox
    text = "filler " * 40 + f"and the key is {AWS_KEY} at last."
    stream = RawStream(mesh, "notebook", reply_headers(
        text, x_fake_token_bytes="8", x_fake_piece_delay_ms="100")).start()
    assert stream.status == 200
    assert eventually(lambda: "filler" in contents(stream.text), 10)
    assert mesh.stop_weir(signal.SIGKILL) == -signal.SIGKILL
    stream.wait()

    assert isinstance(stream.error, httpx.RemoteProtocolError), repr(stream.error)
    assert "incomplete chunked read" in str(stream.error)
    assert AWS_KEY not in stream.text and "AKIA" not in stream.text
    assert "[DONE]" not in stream.text
    received = contents(stream.text)
    assert text.startswith(received) and len(received) < text.index(AWS_KEY)
    # The upstream did stream on; what it sent after the kill went nowhere.
    assert mesh.upstream_requests(), "the request reached the upstream"


# --- 2. graceful drain -------------------------------------------------------------


def test_sigterm_drains_finishes_short_streams_and_ends_long_ones_with_the_error_event(
    private_sandbox: MeshSandbox,
) -> None:
    mesh = private_sandbox
    short_text = "short " * 20  # 20 pieces x 100 ms = about 2 s, within the 5 s grace
    long_text = "long " * 150 + AWS_KEY  # 150 x 100 ms = 15 s, well past it
    short = RawStream(mesh, "checkout", reply_headers(
        short_text, x_fake_token_bytes="6", x_fake_piece_delay_ms="100")).start()
    long = RawStream(mesh, "notebook", reply_headers(
        long_text, x_fake_token_bytes="5", x_fake_piece_delay_ms="100")).start()

    exit_code: list[int | None] = []
    signalled = time.monotonic()
    stopper = threading.Thread(target=lambda: exit_code.append(mesh.stop_weir(signal.SIGTERM)))
    stopper.start()
    # Readiness turns off at once, so Kubernetes stops routing new calls here.
    assert eventually(lambda: get(mesh.weir_admin_url("/readyz"))[0] == 503, 2.0)
    assert "draining" in get(mesh.weir_admin_url("/readyz"))[1]

    short.wait(30)
    assert short.error is None, repr(short.error)
    assert contents(short.text) == short_text
    assert short.text.rstrip().endswith("data: [DONE]")

    long.wait(30)
    assert long.error is None, f"the long stream must end in band, not reset: {long.error!r}"
    assert long.ended_at is not None
    assert GRACE - 0.5 <= long.ended_at - signalled <= GRACE + 3.0
    events = [line for line in long.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    error = json.loads(events[-2][6:])["error"]
    assert error["code"] == "weir_stream_error"
    assert "shutting down" in error["message"]
    assert long_text.startswith(contents(long.text))
    assert AWS_KEY not in long.text

    stopper.join(30)
    assert exit_code == [0]
    assert "drain grace over" in mesh.weir_log()


def test_the_sdk_raises_its_typed_error_for_a_stream_cut_by_the_drain_deadline(
    private_sandbox: MeshSandbox,
) -> None:
    mesh = private_sandbox
    client = mesh.openai_client("checkout")
    stream = client.chat.completions.create(
        model="gpt-4o", messages=PROMPT, stream=True,
        extra_headers=reply_headers("word " * 200, x_fake_piece_delay_ms="100"),
    )
    first = next(iter(stream))
    assert first.choices
    stopper = threading.Thread(target=mesh.stop_weir)
    stopper.start()
    with pytest.raises(openai.APIError) as raised:
        for _ in stream:
            pass
    assert "shutting down" in str(raised.value)
    stopper.join(30)


def test_an_unscanned_stream_past_the_grace_also_ends_with_the_error_event(
    tmp_path: Path, unscanned_policy: str,
) -> None:
    # No response rules: the answer flows through unscanned, and still may not be cut
    # silently when the drain grace ends.
    with MeshSandbox(tmp_path / "sandbox", policy_text=unscanned_policy) as mesh:
        long_text = "long " * 150  # 150 x 100 ms = 15 s, well past the 5 s grace
        long = RawStream(mesh, "checkout", reply_headers(
            long_text, x_fake_token_bytes="5", x_fake_piece_delay_ms="100")).start()
        exit_code: list[int | None] = []
        stopper = threading.Thread(
            target=lambda: exit_code.append(mesh.stop_weir(signal.SIGTERM)))
        stopper.start()
        long.wait(30)
        stopper.join(30)
    assert long.error is None, f"the stream must end in band, not reset: {long.error!r}"
    events = [line for line in long.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    error = json.loads(events[-2][6:])["error"]
    assert error["code"] == "weir_stream_error" and "shutting down" in error["message"]
    assert long_text.startswith(contents(long.text)) and contents(long.text)
    assert exit_code == [0]


# --- 3. policy reload under load -------------------------------------------------------


@dataclass
class Load:
    """Threads calling through Envoy until stopped; every outcome is counted."""

    mesh: MeshSandbox
    workers: int = 6
    ok: int = 0
    denied: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _worker(self, n: int) -> None:
        clients = {w: httpx.Client(verify=self.mesh.ssl_context(w), timeout=30)
                   for w in ("checkout", "notebook", "etl")}
        i = 0
        try:
            while not self.stop.is_set():
                i += 1
                workload = ("checkout", "notebook", "etl")[(n + i) % 3]
                stream = i % 2 == 0
                try:
                    response = clients[workload].post(
                        f"{self.mesh.envoy_url}/v1/chat/completions",
                        content=chat_body(stream, "gpt-4o"),
                        headers=reply_headers(f"hello number {i}"),
                    )
                    outcome = self._judge(workload, stream, response)
                except httpx.HTTPError as exc:
                    outcome = f"{workload}: {exc!r}"
                with self.lock:
                    if outcome == "ok":
                        self.ok += 1
                    elif outcome == "denied":
                        self.denied += 1
                    else:
                        self.failures.append(outcome)
        finally:
            for client in clients.values():
                client.close()

    @staticmethod
    def _judge(workload: str, stream: bool, response: httpx.Response) -> str:
        if workload == "etl":
            if response.status_code == 403 and "no workload matches" in response.text:
                return "denied"
            return f"etl not denied: {response.status_code} {response.text[:200]}"
        if response.status_code != 200:
            return f"{workload}: {response.status_code} {response.text[:200]}"
        if stream:
            ok = response.text.rstrip().endswith("[DONE]") and "hello number" in contents(
                response.text)
        else:
            ok = response.json()["choices"][0]["message"]["content"].startswith("hello number")
        return "ok" if ok else f"{workload}: bad body {response.text[:200]}"

    def __enter__(self) -> Load:
        self._pool = ThreadPoolExecutor(self.workers)
        self._futures = [self._pool.submit(self._worker, n) for n in range(self.workers)]
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for future in self._futures:
            future.result(60)
        self._pool.shutdown()



# Long enough for the 50 reloads and the invalid ones on a slow machine; the test checks
# that the 50 reloads all fell inside the k6 run.
K6_SECONDS = 45


def test_fifty_reloads_under_load_lose_no_request_and_a_broken_policy_changes_nothing(
    private_sandbox: MeshSandbox, tmp_path: Path,
) -> None:
    mesh = private_sandbox
    ok_reloads = 'weir_policy_reloads_total{result="ok"}'
    invalid_reloads = 'weir_policy_reloads_total{result="invalid"}'
    assert mesh.pki is not None
    cert, key = mesh.pki.workload("checkout")
    summary = tmp_path / "k6-summary.json"
    # k6 (streams through the checkout workload) and threads (all three workloads, streamed
    # and not, the denied one included) load Envoy together while the policy changes.
    k6 = start_k6(mesh.envoy_url, str(cert), str(key), summary, vus=4,
                  duration_s=K6_SECONDS, events=20)
    try:
        with Load(mesh) as load:
            assert eventually(lambda: load.ok > 10, 30), load.failures[:3]
            for n in range(50):
                before = metric(mesh, ok_reloads)
                # A different (valid) policy each time: a workload no caller matches.
                write_atomically(mesh.policy_path, SANDBOX_POLICY + (
                    f'  - name: spare-{n}\n    match: ["spiffe://cluster.local/ns/spare/sa/s{n}"]\n'))
                assert eventually(lambda b=before: metric(mesh, ok_reloads) > b, 10), n
            assert k6.poll() is None, "the k6 run ended before the 50th reload"
            calls_during_reloads = load.ok + load.denied

            # An invalid policy at runtime: rejected with its precise error, counted, and
            # the last good policy stays in force (checkout allowed, etl denied) under load.
            invalid_before = metric(mesh, invalid_reloads)
            write_atomically(mesh.policy_path, SANDBOX_POLICY + "    models: notalist: [\n")
            assert eventually(lambda: metric(mesh, invalid_reloads) > invalid_before, 10)
            ok_at_invalid, denied_at_invalid = load.ok, load.denied
            assert eventually(
                lambda: load.ok > ok_at_invalid + 10 and load.denied > denied_at_invalid + 5, 30)
            write_atomically(mesh.policy_path, "trustDomain: cluster.local\n"
                             "defaultAction: allow\nworkloads: [{name: x, match: 7}]\n")
            assert eventually(lambda: metric(mesh, invalid_reloads) > invalid_before + 1, 10)
            denied_at_second = load.denied
            assert eventually(lambda: load.denied > denied_at_second + 5, 30)
        k6_metrics = k6_summary(k6, summary, K6_SECONDS + 60)
    finally:
        if k6.poll() is None:
            k6.kill()

    k6_requests = k6_metrics["http_reqs"]["values"]["count"]
    k6_failures = k6_metrics.get("stream_failures", {}).get("values", {}).get("count", 0)
    assert k6_requests > 50 and k6_failures == 0, (k6_requests, k6_failures)
    assert load.failures == [], load.failures[:5]
    assert calls_during_reloads > 50
    log = mesh.weir_log()
    assert "policy reload rejected" in log
    assert f"{mesh.policy_path}:" in log  # file: path inside the document: reason
    assert get(mesh.weir_admin_url("/readyz"))[0] == 200
    assert metric(mesh, 'weir_stream_errors_total{kind="internal"}') == 0
    assert metric(mesh, 'weir_stream_errors_total{kind="protocol"}') == 0
    assert 'decision="error"' not in get(mesh.weir_admin_url("/metrics"))[1]


# --- 4. slow paths ---------------------------------------------------------------------


def test_a_stalled_upstream_holds_no_worker_and_a_vanished_client_frees_its_stream(
    mesh: MeshSandbox,
) -> None:
    # The upstream sends the first piece, then stalls for 20 s per piece; the clients
    # give up after 6 s without a byte and hang up mid-stream.
    stalled = [
        RawStream(mesh, "checkout", reply_headers(
            "one two three", x_fake_piece_delay_ms="20000"), read_timeout=6.0).start()
        for _ in range(4)
    ]
    assert eventually(lambda: metric(mesh, "weir_active_streams") >= 4, 10)
    client = mesh.openai_client("checkout")
    started = time.monotonic()
    for i in range(20):
        completion = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": f"echo: quick {i}"}])
        assert completion.choices[0].message.content == f"quick {i}"
    assert time.monotonic() - started < 15
    assert not any(stream.done.is_set() for stream in stalled)

    # The clients hang up mid-stream: Envoy cancels the ext_proc streams, Weir frees them.
    for stream in stalled:
        stream.wait(30)
        assert isinstance(stream.error, httpx.ReadTimeout), repr(stream.error)
    assert eventually(lambda: metric(mesh, "weir_active_streams") == 0, 20), \
        "Weir kept streams open after their clients left"


def test_an_8_mib_prompt_with_every_scanner_on_stays_within_the_message_timeout(
    mesh: MeshSandbox,
) -> None:
    """`notebook` scans prompts for secrets (redact) and prompt injection (block), and
    its non-streamed answer (the echo, as big again) for secrets and PII, each judged
    in one piece: each message must stay within Envoy's 2 s message_timeout."""
    words = " ".join(f"w{i}" for i in range(1_000_000))  # about 6.9 MB
    body = json.dumps({"model": "o3", "messages": [
        {"role": "user", "content": f"echo: {words}"}]}).encode()
    assert 6 * 1024 * 1024 < len(body) < 8 * 1024 * 1024
    with httpx.Client(verify=mesh.ssl_context("notebook"), timeout=60) as http:
        response = http.post(f"{mesh.envoy_url}/v1/chat/completions", content=body,
                             headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text[:300]
    assert response.json()["choices"][0]["message"]["content"] == words
