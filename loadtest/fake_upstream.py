"""A fast fake LLM upstream: OpenAI Chat Completions and Anthropic Messages.

It owns the upstream side of the sandbox, the end-to-end tests and the load
tests. Its replies are valid for the official ``openai`` and ``anthropic``
SDKs, streamed (SSE) or not, and deterministic, so tests can assert on exact
bytes:

- The reply is a fixed friendly sentence, or, when the last user message
  starts with ``echo:``, exactly the rest of that message (one optional space
  after the colon is dropped).
- ``x-fake-token-bytes: K`` splits the reply into K-byte pieces (default: a
  word-ish split, each piece a word with its leading whitespace).
- ``x-fake-events: N`` emits exactly N content events, repeating the reply as
  needed; ``x-fake-event-bytes: M`` makes each content piece M bytes. Both are
  for load tests.

Every request except the ``/__requests`` control endpoint is recorded in
memory (``GET /__requests`` lists, ``DELETE /__requests`` clears) and, when a
log path is given, appended to it as one JSON line, so tests can prove that a
denied request never reached the upstream.

Run: ``python -m loadtest.fake_upstream --host 127.0.0.1 --port 8080 [--log FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import re
import signal
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from aiohttp import web

DEFAULT_REPLY = "Hello from the Weir fake upstream! This is a harmless canned reply."
MAX_RECORDED_BODY = 64 * 1024
ECHO_PREFIX = "echo:"

# Each piece is a word together with the whitespace before it, which is how
# real tokenizers cut English (" world"); joining the pieces gives the text back.
_WORDISH = re.compile(r"\s*\S+|\s+")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the upstream saw it (body truncated to 64 KiB)."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: str
    body_truncated: bool
    time: float

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["headers"] = dict(self.headers)
        return data


@dataclass(frozen=True)
class ReplyShape:
    """How the reply text is cut into content events (from the x-fake-* headers)."""

    token_bytes: int | None = None
    events: int | None = None
    event_bytes: int | None = None


class BadRequest(Exception):
    """A client error, answered in the provider's error format."""


# --- reply text ----------------------------------------------------------------


def _text_of(content: Any) -> str:
    """Text of an OpenAI or Anthropic message ``content`` (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and part.get("type") in ("text", "input_text")
        )
    return ""


def last_user_text(body: Mapping[str, Any]) -> str:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def reply_text(body: Mapping[str, Any]) -> str:
    prompt = last_user_text(body)
    if prompt.startswith(ECHO_PREFIX):
        rest = prompt[len(ECHO_PREFIX) :]
        return rest[1:] if rest.startswith(" ") else rest
    return DEFAULT_REPLY


def _split_bytes(chars: Iterable[str], size: int) -> Iterator[str]:
    """Pieces of ``size`` UTF-8 bytes (the last may be shorter). A character is
    never split, so a piece ending in a multi-byte character may be longer."""
    piece: list[str] = []
    length = 0
    for char in chars:
        piece.append(char)
        length += len(char.encode())
        if length >= size:
            yield "".join(piece)
            piece, length = [], 0
    if piece:
        yield "".join(piece)


def content_pieces(text: str, shape: ReplyShape) -> list[str]:
    """The content of each content event.

    Without ``events`` the pieces join back to exactly ``text``. With it, the
    text is repeated (space-separated) until there are ``events`` pieces.
    """
    size = shape.event_bytes or shape.token_bytes
    if shape.events is None:
        return list(_split_bytes(text, size) if size else _WORDISH.findall(text))
    unit = (text or DEFAULT_REPLY) + " "
    if size:
        # Cut across repetitions so every piece has the requested size.
        stream: Iterator[str] = _split_bytes(itertools.cycle(unit), size)
    else:
        stream = itertools.cycle(_WORDISH.findall(unit))
    return list(itertools.islice(stream, shape.events))


def _header_int(request: web.Request, name: str) -> int | None:
    raw = request.headers.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"header {name} must be an integer, got {raw!r}") from None
    if value < (0 if name == "x-fake-events" else 1):
        raise BadRequest(f"header {name} is out of range: {value}")
    return value


def reply_shape(request: web.Request) -> ReplyShape:
    return ReplyShape(
        token_bytes=_header_int(request, "x-fake-token-bytes"),
        events=_header_int(request, "x-fake-events"),
        event_bytes=_header_int(request, "x-fake-event-bytes"),
    )


def _prompt_tokens(body: Mapping[str, Any]) -> int:
    # A rough count (words); the SDKs only need a plausible integer.
    messages = body.get("messages")
    words = 0
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                words += len(_text_of(message.get("content")).split())
    system = body.get("system")
    words += len(_text_of(system).split())
    return max(words, 1)


def _sse(data: Mapping[str, Any], event: str | None = None) -> bytes:
    payload = json.dumps(data, separators=(",", ":"))
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {payload}\n\n".encode()


# --- OpenAI Chat Completions ------------------------------------------------------


def openai_completion(body: Mapping[str, Any], pieces: list[str]) -> dict[str, Any]:
    prompt_tokens = _prompt_tokens(body)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "unknown"),
        "system_fingerprint": "fp_weir_fake",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(pieces), "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(pieces),
            "total_tokens": prompt_tokens + len(pieces),
        },
    }


def openai_stream_events(body: Mapping[str, Any], pieces: list[str]) -> Iterator[bytes]:
    """``chat.completion.chunk`` events: role, one per piece, finish, [usage], [DONE]."""
    stream_options = body.get("stream_options")
    include_usage = isinstance(stream_options, dict) and bool(stream_options.get("include_usage"))
    base: dict[str, Any] = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", "unknown"),
        "system_fingerprint": "fp_weir_fake",
    }
    if include_usage:
        # OpenAI sends "usage": null on every chunk but the last when asked for usage.
        base["usage"] = None

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return _sse({**base, "choices": [choice]})

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    for piece in pieces:
        yield chunk({"content": piece})
    yield chunk({}, "stop")
    if include_usage:
        prompt_tokens = _prompt_tokens(body)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(pieces),
            "total_tokens": prompt_tokens + len(pieces),
        }
        yield _sse({**base, "choices": [], "usage": usage})
    yield b"data: [DONE]\n\n"


def openai_error(status: int, message: str, error_type: str) -> web.Response:
    body = {"error": {"message": message, "type": error_type, "param": None, "code": None}}
    return web.json_response(body, status=status)


# --- Anthropic Messages -------------------------------------------------------------


def anthropic_message(body: Mapping[str, Any], pieces: list[str]) -> dict[str, Any]:
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "unknown"),
        "content": [{"type": "text", "text": "".join(pieces)}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": _prompt_tokens(body), "output_tokens": len(pieces)},
    }


def anthropic_stream_events(body: Mapping[str, Any], pieces: list[str]) -> Iterator[bytes]:
    """The Messages streaming event sequence, as the real API sends it."""
    message = anthropic_message(body, [])
    message["content"] = []
    message["stop_reason"] = None
    message["usage"] = {"input_tokens": _prompt_tokens(body), "output_tokens": 1}
    yield _sse({"type": "message_start", "message": message}, "message_start")
    yield _sse(
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        "content_block_start",
    )
    yield _sse({"type": "ping"}, "ping")
    for piece in pieces:
        yield _sse(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": piece},
            },
            "content_block_delta",
        )
    yield _sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
    yield _sse(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": len(pieces)},
        },
        "message_delta",
    )
    yield _sse({"type": "message_stop"}, "message_stop")


def anthropic_error(status: int, message: str, error_type: str) -> web.Response:
    body = {"type": "error", "error": {"type": error_type, "message": message}}
    return web.json_response(body, status=status)


# --- the server ------------------------------------------------------------------------


class FakeUpstream:
    """The running server: ``port``, the recorded ``requests``, and ``close()``."""

    def __init__(self, log_path: Path | None = None) -> None:
        self._requests: list[RecordedRequest] = []
        self.log_path = log_path
        self._log: IO[str] | None = None
        self._runner: web.AppRunner | None = None
        self.host = ""
        self.port = 0
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_post("/v1/chat/completions", self._chat_completions)
        self.app.router.add_post("/v1/messages", self._messages)
        self.app.router.add_get("/__requests", self._list_requests)
        self.app.router.add_delete("/__requests", self._clear_requests)
        self.app.router.add_route("*", "/{tail:.*}", self._not_found)

    @property
    def requests(self) -> list[RecordedRequest]:
        return list(self._requests)

    def clear(self) -> None:
        self._requests.clear()

    async def start(self, host: str, port: int) -> None:
        if self.log_path is not None:
            # Line-buffered so a test can read the log while the server runs.
            self._log = self.log_path.open("a", buffering=1, encoding="utf-8")
        # No access log: it costs more than serving a reply under load.
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        address = self._runner.addresses[0]
        self.host, self.port = address[0], address[1]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._log is not None:
            self._log.close()
            self._log = None

    async def _record(self, request: web.Request) -> bytes:
        raw = await request.read()
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        recorded = RecordedRequest(
            method=request.method,
            path=request.path,
            query=request.query_string,
            headers=headers,
            body=raw[:MAX_RECORDED_BODY].decode("utf-8", "replace"),
            body_truncated=len(raw) > MAX_RECORDED_BODY,
            time=time.time(),
        )
        self._requests.append(recorded)
        if self._log is not None:
            self._log.write(json.dumps(recorded.to_json()) + "\n")
        return raw

    @staticmethod
    def _json_body(raw: bytes) -> dict[str, Any]:
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadRequest(f"request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise BadRequest("request body must be a JSON object")
        return body

    async def _stream(self, request: web.Request, events: Iterator[bytes]) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200,
            headers={"content-type": "text/event-stream", "cache-control": "no-cache"},
        )
        await response.prepare(request)
        for event in events:
            await response.write(event)
        await response.write_eof()
        return response

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        raw = await self._record(request)
        try:
            body = self._json_body(raw)
            pieces = content_pieces(reply_text(body), reply_shape(request))
        except BadRequest as exc:
            return openai_error(400, str(exc), "invalid_request_error")
        if body.get("stream"):
            return await self._stream(request, openai_stream_events(body, pieces))
        return web.json_response(openai_completion(body, pieces))

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        raw = await self._record(request)
        try:
            body = self._json_body(raw)
            pieces = content_pieces(reply_text(body), reply_shape(request))
        except BadRequest as exc:
            return anthropic_error(400, str(exc), "invalid_request_error")
        if body.get("stream"):
            return await self._stream(request, anthropic_stream_events(body, pieces))
        return web.json_response(anthropic_message(body, pieces))

    async def _list_requests(self, request: web.Request) -> web.Response:
        return web.json_response([r.to_json() for r in self._requests])

    async def _clear_requests(self, request: web.Request) -> web.Response:
        self.clear()
        return web.json_response({"cleared": True})

    async def _not_found(self, request: web.Request) -> web.Response:
        await self._record(request)
        message = f"no route for {request.method} {request.path}"
        return web.json_response({"error": {"type": "not_found", "message": message}}, status=404)


async def start_fake_upstream(host: str, port: int, log_path: Path | None = None) -> FakeUpstream:
    """Start the fake upstream on ``host:port`` (port 0 picks a free one)."""
    upstream = FakeUpstream(log_path)
    try:
        await upstream.start(host, port)
    except BaseException:
        await upstream.close()
        raise
    return upstream


async def _serve(host: str, port: int, log_path: Path | None) -> None:
    upstream = await start_fake_upstream(host, port, log_path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening on {upstream.host}:{upstream.port}", flush=True)
    try:
        await stop.wait()
    finally:
        await upstream.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fake OpenAI/Anthropic upstream for Weir")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--log", type=Path, default=None, help="append requests as JSON lines")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port, args.log))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
