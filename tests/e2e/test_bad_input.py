"""Bad input from either side: each gets a clear error in the provider's own format, and
the worker stays healthy (the very next normal call succeeds). Real Envoy 1.40 and mTLS.

Already pinned elsewhere and re-run here only as part of the "healthy after" sweep:
truncated JSON, invalid UTF-8, a missing `model` and the 413 past the body limit
(`test_guarded_calls.py`).
"""

from __future__ import annotations

import gzip
import http.server
import json
import socketserver
import threading
from collections.abc import Iterator

import httpx2 as httpx
import pytest

from mesh.sandbox import MeshSandbox

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
PROMPT = [{"role": "user", "content": "echo: still healthy"}]


def post(mesh: MeshSandbox, path: str, body: bytes, workload: str = "checkout",
         **headers: str) -> httpx.Response:
    with httpx.Client(verify=mesh.ssl_context(workload), timeout=60) as http:
        return http.post(f"{mesh.envoy_url}{path}", content=body, headers={
            "content-type": "application/json",
            **{k.replace("_", "-"): v for k, v in headers.items()}})


def assert_healthy(mesh: MeshSandbox) -> None:
    """The next ordinary call through the same worker succeeds."""
    body = json.dumps({"model": "gpt-4o", "messages": PROMPT}).encode()
    response = post(mesh, CHAT, body)
    assert response.status_code == 200, response.text[:300]
    assert response.json()["choices"][0]["message"]["content"] == "still healthy"


def nested(depth: int) -> bytes:
    return b'{"model": "gpt-4o", "messages": [], "x": ' + b"[" * depth + b"]" * depth + b"}"


GZIP_BOMB = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)  # 64 MiB in ~64 KiB

REQUEST_CASES = [
    pytest.param(CHAT, b'{"model": "gpt-4o", "messages": [', {}, 400,
                 "invalid_request_error", "not valid JSON", id="malformed-json"),
    pytest.param(MESSAGES, b"{not json", {}, 400,
                 "invalid_request_error", "not valid JSON", id="anthropic-malformed-json"),
    pytest.param(CHAT, b'{"model": "gpt-4o", "x": "\xff\xfe"}', {}, 400,
                 "invalid_request_error", "not valid UTF-8", id="invalid-utf8"),
    pytest.param(CHAT, nested(100_000), {}, 400,
                 "invalid_request_error", "nests deeper than", id="deeply-nested"),
    pytest.param(MESSAGES, nested(5_000), {}, 400,
                 "invalid_request_error", "nests deeper than", id="anthropic-deeply-nested"),
    pytest.param(CHAT, b'{"messages": []}', {}, 400,
                 "invalid_request_error", "model", id="missing-model"),
    pytest.param(CHAT, b'[{"model": "gpt-4o"}]', {}, 400,
                 "invalid_request_error", "JSON object", id="not-an-object"),
    pytest.param(CHAT, GZIP_BOMB, {"content_encoding": "gzip"}, 400,
                 "invalid_request_error", "content-encoding 'gzip'", id="gzip-bomb"),
    pytest.param(MESSAGES, b'{"model": "claude-sonnet-4", "messages": [], "pad": "'
                 + b"a" * (9 * 1024 * 1024) + b'"}', {}, 413,
                 "request_too_large", "limit", id="over-the-body-limit"),
]


@pytest.mark.parametrize(("path", "body", "headers", "status", "error_type", "reason"),
                         REQUEST_CASES)
def test_a_bad_request_gets_a_clear_error_and_the_worker_stays_healthy(
    mesh: MeshSandbox, path: str, body: bytes, headers: dict[str, str], status: int,
    error_type: str, reason: str,
) -> None:
    response = post(mesh, path, body, **headers)
    assert response.status_code == status, response.text[:300]
    error = response.json()["error"]
    assert error["type"] == error_type
    assert reason in error["message"]
    assert response.headers["x-weir-verdict"] == "error"
    assert mesh.upstream_requests() == []
    assert_healthy(mesh)


def chat(stream: bool) -> bytes:
    return json.dumps({"model": "gpt-4o", "stream": stream,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()


def sse_data(raw: str) -> list[str]:
    return [line[6:] for line in raw.splitlines() if line.startswith("data: ")]


def test_a_huge_single_sse_line_from_the_upstream_ends_the_stream_with_the_error_event(
    mesh: MeshSandbox,
) -> None:
    """One 2 MB event (a single `data:` line) is past the guard's 1 MiB event limit: the
    client gets the provider's in-band error event, never the unscanned line."""
    response = post(mesh, CHAT, chat(True), x_fake_events="1", x_fake_event_bytes="2000000",
                    x_fake_token_bytes="65536")
    assert response.status_code == 200
    data = sse_data(response.text)
    assert data[-1] == "[DONE]"
    error = json.loads(data[-2])["error"]
    assert error["code"] == "weir_stream_error"
    assert "malformed event stream" in error["message"]
    assert len(response.content) < 100_000, "the oversized event must not pass"
    assert_healthy(mesh)


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "json"])
def test_a_gzipped_answer_fails_closed_and_is_never_scanned_as_text(
    mesh: MeshSandbox, stream: bool
) -> None:
    """`checkout` redacts secrets in answers: compressed bytes cannot be scanned, so the
    answer is refused with a 503 in the provider's format instead of passing unscanned."""
    response = post(mesh, CHAT, chat(stream), x_fake_content_encoding="gzip",
                    x_fake_reply_b64="QUtJQVEzRUdVS1pXNVhZVDdNMlA=")  # an AWS key id
    assert response.status_code == 503, response.text[:300]
    assert response.headers.get("content-encoding") is None
    error = response.json()["error"]
    assert "compressed (gzip) and cannot be scanned" in error["message"]
    assert_healthy(mesh)


class _OddUpstream(http.server.BaseHTTPRequestHandler):
    """Answers every POST 200 with the content type the request asks for (a chat
    completion for application/json, else an HTML page carrying an AWS key id)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        kind = self.headers.get("x-odd-content-type", "text/html")
        body = b"<html>AKIAQ3EGUKZW5XYT7M2P</html>"
        if kind == "application/json":
            body = json.dumps({"id": "c", "object": "chat.completion", "created": 1,
                               "model": "gpt-4o", "choices": [{
                                   "index": 0, "finish_reason": "stop",
                                   "message": {"role": "assistant", "content": "fine"}}]}).encode()
        self.send_response(200)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def odd_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshSandbox]:
    """A sandbox of its own whose upstream is replaced by one answering odd content types."""
    with MeshSandbox(tmp_path_factory.mktemp("odd")) as mesh:
        mesh._upstream.stop()  # type: ignore[union-attr]  # our own sandbox: swap its upstream
        socketserver.TCPServer.allow_reuse_address = True
        server = socketserver.ThreadingTCPServer(
            ("127.0.0.1", mesh.ports["upstream"]), _OddUpstream)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield mesh
        finally:
            server.shutdown()
            server.server_close()


@pytest.mark.parametrize("content_type", ["text/html", "application/octet-stream", ""])
def test_an_unknown_response_content_type_is_refused_in_the_providers_format(
    odd_upstream: MeshSandbox, content_type: str
) -> None:
    response = post(odd_upstream, CHAT, chat(False), x_odd_content_type=content_type)
    assert response.status_code == 503, response.text[:300]
    assert "AKIA" not in response.text
    error = response.json()["error"]
    assert "cannot be scanned" in error["message"]
    anthropic = post(odd_upstream, MESSAGES, json.dumps(
        {"model": "claude-sonnet-4", "max_tokens": 5, "messages": []}).encode(),
        x_odd_content_type=content_type)
    assert anthropic.status_code == 503
    assert anthropic.json()["type"] == "error"
    # The worker is healthy: the same call answered as JSON gets through.
    fine = post(odd_upstream, CHAT, chat(False), x_odd_content_type="application/json")
    assert fine.status_code == 200, fine.text[:300]
    assert fine.json()["choices"][0]["message"]["content"] == "fine"
