"""A fast fake LLM upstream: OpenAI Chat Completions and Responses, Anthropic Messages.

It owns the upstream side of the sandbox, the end-to-end tests and the load
tests. Its replies are valid for the official ``openai`` and ``anthropic``
SDKs, streamed (SSE) or not, and deterministic, so tests can assert on exact
bytes. Routes: ``POST /v1/chat/completions``, ``POST /v1/responses``,
``POST /v1/messages``.

The reply text
    A fixed friendly sentence (``DEFAULT_REPLY``), or, when the last user
    message starts with ``echo:``, exactly the rest of that message (one
    optional space after the colon is dropped). "The last user message" is the
    last ``role: user`` entry of ``messages`` (chat, Anthropic) or of ``input``
    (Responses; a string ``input`` is one user message). Only ``text`` and
    ``input_text`` parts count. ``x-fake-reply-b64: <base64>`` overrides both:
    the reply is exactly that UTF-8 text, whatever the prompt says.

How the reply is cut into content events (request headers)
    - default: word-ish pieces, each a word with its leading whitespace.
    - ``x-fake-token-bytes: K``: K-byte UTF-8 pieces (a character is never
      split, so a piece ending in a multi-byte character may be longer).
    - ``x-fake-split-seed: S`` (any integer): pieces of random sizes
      1..``x-fake-max-piece`` (default 8) *characters* (code points), drawn
      with ``random.Random(S).randint`` in order; the same seed gives the same
      pieces. A code point is never split; a grapheme cluster (e.g. an emoji
      with a skin-tone modifier) may be. Cannot be combined with
      ``x-fake-token-bytes`` or ``x-fake-event-bytes`` (400).
    - ``x-fake-events: N``: exactly N content events, repeating the reply
      (space-separated) as needed; ``x-fake-event-bytes: M`` makes each piece M
      bytes. For load tests. Combines with ``x-fake-split-seed``.
    Without ``x-fake-events`` the pieces always join back to the reply text.

Tool calls: ``x-fake-tool-call: NAME``
    The reply text is sent as the *arguments* of one tool/function call named
    NAME instead of as text content, in the same pieces:
    - chat: the first chunk carries ``role`` and ``tool_calls[0]`` with
      ``id``, ``type: function``, ``function.name`` and empty ``arguments``;
      each piece is then a ``tool_calls[0].function.arguments`` delta;
      ``finish_reason: tool_calls``. Non-streaming: ``message.tool_calls``,
      ``content: null``.
    - Responses: a ``function_call`` output item (``call_id``, ``name``)
      with ``response.function_call_arguments.delta`` events and ``.done``.
    - Anthropic: a ``tool_use`` content block with ``input_json_delta``
      ``partial_json`` deltas; ``stop_reason: tool_use``. Non-streaming, the
      block's ``input`` is the reply parsed as JSON when it is a JSON object,
      else ``{"text": <reply>}``.
    The arguments text need not be JSON. But the anthropic SDK's stream
    helper (``client.messages.stream``) re-parses the accumulated
    ``partial_json`` with ``jiter.from_json(..., partial_mode=True)`` after
    *every* delta and raises ``ValueError("Unable to parse tool parameter
    JSON ...")`` on the first delta that is not a JSON prefix; the raw
    ``messages.create(stream=True)`` iterator does not parse, so it passes
    any text. So use a JSON object text like ``{"note": "..."}`` with the
    helper. (Partial mode leaves an unfinished string value out, so the
    ``input_json`` snapshot stays ``{}`` until the value's closing quote.)
    The openai SDK never parses arguments while streaming.

Usage (deterministic, identical streamed and not)
    - input tokens = max(1, number of whitespace-separated words in the text
      parts of every entry of ``messages``/``input`` (any role) plus
      ``system`` (Anthropic) and ``instructions`` (Responses)). Non-text
      parts and items without a ``role`` (e.g. ``function_call_output``)
      count nothing.
    - output tokens = number of content events = number of pieces (text
      deltas or argument deltas), e.g. 3 for ``echo: a b c`` by default.
      The chat role chunk and the Anthropic ``message_start`` do not count.
    - total = input + output.
    Reported as: chat ``usage.prompt_tokens``/``completion_tokens``/
    ``total_tokens`` (non-streaming, and on the extra last chunk when
    ``stream_options.include_usage`` is true, with ``"usage": null`` on every
    other chunk); Responses ``usage.input_tokens``/``output_tokens``/
    ``total_tokens`` (non-streaming, and in ``response.completed``; the
    created/in_progress events have ``usage: null``); Anthropic
    ``usage.input_tokens`` (non-streaming and ``message_start``, whose
    ``output_tokens`` is 1, like the real API) and ``usage.output_tokens``
    (non-streaming and ``message_delta``).

Wire-level knobs (for robustness tests)
    - ``x-fake-raw-sse: <base64>``: on any of the three routes, whatever the
      body (it is not parsed), answer 200 ``text/event-stream`` whose body is
      exactly the decoded bytes, written in pieces of ``x-fake-token-bytes``
      bytes (default: one piece). Pieces may split UTF-8 characters and lines:
      that is the point. Invalid base64 is a 400.
    - ``x-fake-content-encoding: gzip``: gzip the response body and set
      ``content-encoding: gzip``. A stream is one gzip member, flushed
      (``Z_SYNC_FLUSH``) after every event/piece so it stays incremental;
      ``identity`` or empty means no encoding; anything else is a 400.
    - ``x-fake-piece-delay-ms: D``: sleep D ms between streamed writes, so
      the pieces reach the peer as separate reads.

Errors are a 400 in the route's provider format. Every request except the
``/__requests`` control endpoint is recorded in memory (``GET /__requests``
lists, ``DELETE /__requests`` clears) and, when a log path is given, appended
to it as one JSON line, so tests can prove that a denied request never
reached the upstream.

Run: ``python -m loadtest.fake_upstream --host 127.0.0.1 --port 8080 [--log FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import gzip
import hashlib
import itertools
import json
import random
import re
import signal
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from aiohttp import web

DEFAULT_REPLY = "Hello from the Weir fake upstream! This is a harmless canned reply."
MAX_RECORDED_BODY = 64 * 1024
ECHO_PREFIX = "echo:"
DEFAULT_MAX_PIECE = 8

# Each piece is a word together with the whitespace before it, which is how
# real tokenizers cut English (" world"); joining the pieces gives the text back.
_WORDISH = re.compile(r"\s*\S+|\s+")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the upstream saw it (body truncated to 64 KiB; its length and
    SHA-256 are of the whole body, so tests can check large uploads byte for byte)."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: str
    body_truncated: bool
    time: float
    body_bytes: int = 0
    body_sha256: str = ""

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
    split_seed: int | None = None
    max_piece: int = DEFAULT_MAX_PIECE


@dataclass(frozen=True)
class WireOptions:
    """How the response bytes are sent (from the x-fake-* headers)."""

    gzip: bool = False
    piece_delay: float = 0.0


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


def _conversation(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The role-bearing entries: chat/Anthropic ``messages`` or Responses ``input``."""
    messages = body.get("messages")
    if isinstance(messages, list):
        return [m for m in messages if isinstance(m, dict)]
    given = body.get("input")
    if isinstance(given, str):
        return [{"role": "user", "content": given}]
    if isinstance(given, list):
        return [m for m in given if isinstance(m, dict) and "role" in m]
    return []


def last_user_text(body: Mapping[str, Any]) -> str:
    for message in reversed(_conversation(body)):
        if message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def reply_text(body: Mapping[str, Any]) -> str:
    prompt = last_user_text(body)
    if prompt.startswith(ECHO_PREFIX):
        rest = prompt[len(ECHO_PREFIX) :]
        return rest[1:] if rest.startswith(" ") else rest
    return DEFAULT_REPLY


def chosen_reply(request: web.Request) -> str | None:
    """The reply named by ``x-fake-reply-b64`` (base64 of UTF-8), if the header is set.

    Tests use it to have the model "say" a secret while the prompt stays harmless,
    so that prompt rules do not stop the request before the answer is streamed.
    """
    encoded = request.headers.get("x-fake-reply-b64")
    if not encoded:
        return None
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise BadRequest(f"x-fake-reply-b64 is not base64 of UTF-8 text: {exc}") from None


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


def _split_random(chars: Iterable[str], seed: int, max_piece: int) -> Iterator[str]:
    """Pieces of 1..max_piece characters, sizes from ``random.Random(seed).randint``."""
    rng = random.Random(seed)
    it = iter(chars)
    while piece := "".join(itertools.islice(it, rng.randint(1, max_piece))):
        yield piece


def content_pieces(text: str, shape: ReplyShape) -> list[str]:
    """The content of each content event.

    Without ``events`` the pieces join back to exactly ``text``. With it, the
    text is repeated (space-separated) until there are ``events`` pieces.
    """
    size = shape.event_bytes or shape.token_bytes
    if shape.events is None:
        if shape.split_seed is not None:
            return list(_split_random(text, shape.split_seed, shape.max_piece))
        return list(_split_bytes(text, size) if size else _WORDISH.findall(text))
    unit = (text or DEFAULT_REPLY) + " "
    if shape.split_seed is not None:
        stream: Iterator[str] = _split_random(
            itertools.cycle(unit), shape.split_seed, shape.max_piece
        )
    elif size:
        # Cut across repetitions so every piece has the requested size.
        stream = _split_bytes(itertools.cycle(unit), size)
    else:
        stream = itertools.cycle(_WORDISH.findall(unit))
    return list(itertools.islice(stream, shape.events))


def _header_int(request: web.Request, name: str, minimum: int | None = 1) -> int | None:
    raw = request.headers.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"header {name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise BadRequest(f"header {name} is out of range: {value}")
    return value


def reply_shape(request: web.Request) -> ReplyShape:
    shape = ReplyShape(
        token_bytes=_header_int(request, "x-fake-token-bytes"),
        events=_header_int(request, "x-fake-events", minimum=0),
        event_bytes=_header_int(request, "x-fake-event-bytes"),
        split_seed=_header_int(request, "x-fake-split-seed", minimum=None),
        max_piece=_header_int(request, "x-fake-max-piece") or DEFAULT_MAX_PIECE,
    )
    if shape.split_seed is not None and (shape.token_bytes or shape.event_bytes):
        raise BadRequest(
            "header x-fake-split-seed cannot be combined with x-fake-token-bytes"
            " or x-fake-event-bytes"
        )
    return shape


def tool_call_name(request: web.Request) -> str | None:
    """The ``x-fake-tool-call`` function name, or None (absent or blank)."""
    name = request.headers.get("x-fake-tool-call", "").strip()
    return name or None


def wire_options(request: web.Request) -> WireOptions:
    encoding = request.headers.get("x-fake-content-encoding", "").strip().lower()
    if encoding not in ("", "identity", "gzip"):
        raise BadRequest(f"header x-fake-content-encoding must be gzip, got {encoding!r}")
    delay_ms = _header_int(request, "x-fake-piece-delay-ms", minimum=0) or 0
    return WireOptions(gzip=encoding == "gzip", piece_delay=delay_ms / 1000)


def raw_sse_body(request: web.Request) -> bytes | None:
    """The decoded ``x-fake-raw-sse`` bytes, or None when the header is absent."""
    encoded = request.headers.get("x-fake-raw-sse")
    if encoded is None:
        return None
    try:
        return base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("header x-fake-raw-sse must be standard base64") from None


def _split_raw(data: bytes, size: int | None) -> list[bytes]:
    if not size:
        return [data]
    return [data[i : i + size] for i in range(0, len(data), size)]


def prompt_tokens(body: Mapping[str, Any]) -> int:
    """Input tokens: the words of every message plus ``system``/``instructions`` (min 1)."""
    words = sum(len(_text_of(m.get("content")).split()) for m in _conversation(body))
    words += len(_text_of(body.get("system")).split())
    words += len(_text_of(body.get("instructions")).split())
    return max(words, 1)


def _sse(data: Mapping[str, Any], event: str | None = None) -> bytes:
    payload = json.dumps(data, separators=(",", ":"))
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {payload}\n\n".encode()


def _new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


# --- OpenAI Chat Completions ------------------------------------------------------


def _chat_usage(body: Mapping[str, Any], pieces: list[str]) -> dict[str, int]:
    prompt = prompt_tokens(body)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": len(pieces),
        "total_tokens": prompt + len(pieces),
    }


def openai_completion(
    body: Mapping[str, Any], pieces: list[str], tool: str | None = None
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(pieces), "refusal": None}
    if tool is not None:
        call = {
            "id": _new_id("call_"),
            "type": "function",
            "function": {"name": tool, "arguments": "".join(pieces)},
        }
        message = {"role": "assistant", "content": None, "refusal": None, "tool_calls": [call]}
    return {
        "id": _new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "unknown"),
        "system_fingerprint": "fp_weir_fake",
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "stop" if tool is None else "tool_calls",
            }
        ],
        "usage": _chat_usage(body, pieces),
    }


def openai_stream_events(
    body: Mapping[str, Any], pieces: list[str], tool: str | None = None
) -> Iterator[bytes]:
    """``chat.completion.chunk`` events: role, one per piece, finish, [usage], [DONE]."""
    stream_options = body.get("stream_options")
    include_usage = isinstance(stream_options, dict) and bool(stream_options.get("include_usage"))
    base: dict[str, Any] = {
        "id": _new_id("chatcmpl-"),
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

    if tool is None:
        yield chunk({"role": "assistant", "content": "", "refusal": None})
        for piece in pieces:
            yield chunk({"content": piece})
        yield chunk({}, "stop")
    else:
        # As the real API: the first chunk names the call, the rest carry arguments.
        first_call = {
            "index": 0,
            "id": _new_id("call_"),
            "type": "function",
            "function": {"name": tool, "arguments": ""},
        }
        yield chunk({"role": "assistant", "content": None, "tool_calls": [first_call]})
        for piece in pieces:
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
        yield chunk({}, "tool_calls")
    if include_usage:
        yield _sse({**base, "choices": [], "usage": _chat_usage(body, pieces)})
    yield b"data: [DONE]\n\n"


def openai_error(status: int, message: str, error_type: str) -> web.Response:
    body = {"error": {"message": message, "type": error_type, "param": None, "code": None}}
    return web.json_response(body, status=status)


# --- OpenAI Responses ---------------------------------------------------------------


def _responses_usage(body: Mapping[str, Any], pieces: list[str]) -> dict[str, Any]:
    prompt = prompt_tokens(body)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": len(pieces),
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + len(pieces),
    }


def _response_object(
    body: Mapping[str, Any],
    response_id: str,
    created_at: int,
    *,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body.get("model", "unknown"),
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []),
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": body.get("metadata") or {},
    }


def _output_text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _message_item(item_id: str, status: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _function_call_item(
    item_id: str, call_id: str, name: str, status: str, arguments: str
) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": call_id,
        "name": name,
    }


def responses_response(
    body: Mapping[str, Any], pieces: list[str], tool: str | None = None
) -> dict[str, Any]:
    text = "".join(pieces)
    if tool is None:
        item = _message_item(_new_id("msg_"), "completed", [_output_text_part(text)])
    else:
        item = _function_call_item(_new_id("fc_"), _new_id("call_"), tool, "completed", text)
    return _response_object(
        body,
        _new_id("resp_"),
        int(time.time()),
        status="completed",
        output=[item],
        usage=_responses_usage(body, pieces),
    )


def responses_stream_events(
    body: Mapping[str, Any], pieces: list[str], tool: str | None = None
) -> Iterator[bytes]:
    """The Responses streaming event sequence, with ``event:`` lines and ``sequence_number``."""
    sequence = itertools.count()
    response_id, created_at = _new_id("resp_"), int(time.time())
    text = "".join(pieces)

    def event(kind: str, **fields: Any) -> bytes:
        return _sse({"type": kind, "sequence_number": next(sequence), **fields}, kind)

    def response(status: str, output: list[dict[str, Any]], usage: Any = None) -> dict[str, Any]:
        return _response_object(
            body, response_id, created_at, status=status, output=output, usage=usage
        )

    yield event("response.created", response=response("in_progress", []))
    yield event("response.in_progress", response=response("in_progress", []))
    where = {"output_index": 0}
    if tool is None:
        item_id = _new_id("msg_")
        where_part = {"item_id": item_id, **where, "content_index": 0}
        yield event(
            "response.output_item.added", **where, item=_message_item(item_id, "in_progress", [])
        )
        yield event("response.content_part.added", **where_part, part=_output_text_part(""))
        for piece in pieces:
            yield event("response.output_text.delta", **where_part, delta=piece, logprobs=[])
        yield event("response.output_text.done", **where_part, text=text, logprobs=[])
        yield event("response.content_part.done", **where_part, part=_output_text_part(text))
        done = _message_item(item_id, "completed", [_output_text_part(text)])
    else:
        item_id, call_id = _new_id("fc_"), _new_id("call_")
        added = _function_call_item(item_id, call_id, tool, "in_progress", "")
        yield event("response.output_item.added", **where, item=added)
        for piece in pieces:
            yield event(
                "response.function_call_arguments.delta", item_id=item_id, **where, delta=piece
            )
        yield event(
            "response.function_call_arguments.done", item_id=item_id, **where, arguments=text
        )
        done = _function_call_item(item_id, call_id, tool, "completed", text)
    yield event("response.output_item.done", **where, item=done)
    completed = response("completed", [done], _responses_usage(body, pieces))
    yield event("response.completed", response=completed)


# --- Anthropic Messages -------------------------------------------------------------


def _tool_input(text: str) -> Any:
    """A non-streamed ``tool_use.input``: the reply as a JSON object, else ``{"text": reply}``."""
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    return parsed if isinstance(parsed, dict) else {"text": text}


def anthropic_message(
    body: Mapping[str, Any], pieces: list[str], tool: str | None = None
) -> dict[str, Any]:
    text = "".join(pieces)
    block: dict[str, Any] = {"type": "text", "text": text}
    if tool is not None:
        block = {
            "type": "tool_use",
            "id": _new_id("toolu_"),
            "name": tool,
            "input": _tool_input(text),
        }
    return {
        "id": _new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "unknown"),
        "content": [block],
        "stop_reason": "end_turn" if tool is None else "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": prompt_tokens(body), "output_tokens": len(pieces)},
    }


def anthropic_stream_events(
    body: Mapping[str, Any], pieces: list[str], tool: str | None = None
) -> Iterator[bytes]:
    """The Messages streaming event sequence, as the real API sends it."""
    message = anthropic_message(body, [])
    message["content"] = []
    message["stop_reason"] = None
    message["usage"] = {"input_tokens": prompt_tokens(body), "output_tokens": 1}
    yield _sse({"type": "message_start", "message": message}, "message_start")
    if tool is None:
        block: dict[str, Any] = {"type": "text", "text": ""}
    else:
        block = {"type": "tool_use", "id": _new_id("toolu_"), "name": tool, "input": {}}
    yield _sse(
        {"type": "content_block_start", "index": 0, "content_block": block},
        "content_block_start",
    )
    yield _sse({"type": "ping"}, "ping")
    for piece in pieces:
        if tool is None:
            delta = {"type": "text_delta", "text": piece}
        else:
            delta = {"type": "input_json_delta", "partial_json": piece}
        yield _sse(
            {"type": "content_block_delta", "index": 0, "delta": delta},
            "content_block_delta",
        )
    yield _sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
    yield _sse(
        {
            "type": "message_delta",
            "delta": {
                "stop_reason": "end_turn" if tool is None else "tool_use",
                "stop_sequence": None,
            },
            "usage": {"output_tokens": len(pieces)},
        },
        "message_delta",
    )
    yield _sse({"type": "message_stop"}, "message_stop")


def anthropic_error(status: int, message: str, error_type: str) -> web.Response:
    body = {"type": "error", "error": {"type": error_type, "message": message}}
    return web.json_response(body, status=status)


# --- the server ------------------------------------------------------------------------

Reply = Callable[[Mapping[str, Any], list[str], str | None], dict[str, Any]]
Events = Callable[[Mapping[str, Any], list[str], str | None], Iterator[bytes]]


@dataclass(frozen=True)
class Api:
    """One provider route: its non-streamed reply, its event stream, its error format."""

    reply: Reply
    events: Events
    error: Callable[[int, str, str], web.Response]


OPENAI_CHAT = Api(openai_completion, openai_stream_events, openai_error)
OPENAI_RESPONSES = Api(responses_response, responses_stream_events, openai_error)
ANTHROPIC_MESSAGES = Api(anthropic_message, anthropic_stream_events, anthropic_error)


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
        self.app.router.add_post("/v1/responses", self._responses)
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
            body_bytes=len(raw),
            body_sha256=hashlib.sha256(raw).hexdigest(),
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

    async def _stream(
        self, request: web.Request, events: Iterable[bytes], wire: WireOptions = WireOptions()
    ) -> web.StreamResponse:
        headers = {"content-type": "text/event-stream", "cache-control": "no-cache"}
        if wire.gzip:
            headers["content-encoding"] = "gzip"
        response = web.StreamResponse(status=200, headers=headers)
        await response.prepare(request)
        # wbits=31: a gzip member; each piece is sync-flushed so it is decodable on arrival.
        compressor = zlib.compressobj(wbits=31) if wire.gzip else None
        for index, event in enumerate(events):
            if index and wire.piece_delay:
                await asyncio.sleep(wire.piece_delay)
            if compressor is not None:
                event = compressor.compress(event) + compressor.flush(zlib.Z_SYNC_FLUSH)
            await response.write(event)
        if compressor is not None:
            await response.write(compressor.flush())
        await response.write_eof()
        return response

    @staticmethod
    def _json(data: Mapping[str, Any], wire: WireOptions) -> web.Response:
        payload = json.dumps(data).encode()
        if not wire.gzip:
            return web.Response(body=payload, content_type="application/json")
        return web.Response(
            body=gzip.compress(payload, mtime=0),
            content_type="application/json",
            headers={"content-encoding": "gzip"},
        )

    async def _serve(self, request: web.Request, api: Api) -> web.StreamResponse:
        raw = await self._record(request)
        try:
            wire = wire_options(request)
            raw_sse = raw_sse_body(request)
            if raw_sse is not None:
                pieces = _split_raw(raw_sse, _header_int(request, "x-fake-token-bytes"))
                return await self._stream(request, pieces, wire)
            body = self._json_body(raw)
            pieces_text = content_pieces(
                chosen_reply(request) or reply_text(body), reply_shape(request)
            )
            tool = tool_call_name(request)
        except BadRequest as exc:
            return api.error(400, str(exc), "invalid_request_error")
        if body.get("stream"):
            return await self._stream(request, api.events(body, pieces_text, tool), wire)
        return self._json(api.reply(body, pieces_text, tool), wire)

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, OPENAI_CHAT)

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, OPENAI_RESPONSES)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, ANTHROPIC_MESSAGES)

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
