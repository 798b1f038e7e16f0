"""Anthropic Messages (`POST /v1/messages`): shapes of requests, stream events, errors.

Text the scanner sees:

- request (``request_texts``): ``system`` (a string or text blocks); each message's
  ``content`` (a string or blocks): ``text`` blocks, every string inside a ``tool_use``
  block's ``input`` object (kind ``tool_arguments``), ``tool_result`` content (a string
  or text blocks), and plain-text ``document`` sources. Every other string (thinking
  blocks included) is swept by `extproc.document_guard`.
- stream (``read_event``), one channel per content block index:
  ``("text", index)`` for ``text_delta`` and ``("tool_input", index)`` for
  ``input_json_delta`` (the tool input's JSON source, in pieces). A text block's
  ``("thinking", index)`` for ``thinking_delta``. A text or thinking block's
  ``content_block_start`` carries its initial text (normally "") as a delta of the
  same channel, so text split between the opening event and the first delta is read
  whole. Signature, citation and unknown deltas are left to the guard's sweep, which
  scans every string the adapter does not name. A missing or non-integer ``index``,
  and a ``type`` missing or different from the SSE ``event:`` name, raise
  BadResponseBody: the stream fails closed.
- non-streamed response (``response_texts``): ``content[]`` text blocks and string
  leaves of ``tool_use`` inputs.

Usage: ``message_start`` carries ``message.usage`` (``input_tokens`` and a first
``output_tokens``), ``message_delta`` the running ``output_tokens``; `Usage.merged`
keeps the latest of each. ``message_stop`` is the terminal event.

In-band error (``error_events``): ``event: error`` with
``{"type": "error", "error": {"type": ..., "message": ...}}``. The real API closes the
stream after an error event without a ``message_stop``, so that one event is the whole
ending: the caller then ends the body. The anthropic SDK (2.x, ``_streaming.Stream``)
raises ``anthropic.APIStatusError`` (the class chosen by the HTTP status, 200 here, so
the base class) carrying the JSON body, when it reads an SSE event named ``error``
(verified in tests/unit/llm/test_sdk_errors.py). Its error object has no code field,
so ``code`` is not sent; put what the client must know in the message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from extproc.llm.base import (
    BadResponseBody,
    Channel,
    ErrorKind,
    JsonAdapter,
    StreamEvent,
    StreamTexts,
    TextPart,
    Usage,
    add_string,
    as_dict,
    as_int,
    as_list,
    dig,
    dump_json_text,
    event_type,
    line_ending_of,
    payload_of,
    strict_index,
    strings_under,
)
from extproc.sse import SseEvent

# Anthropic's documented error types, see its "Errors" page.
_ERROR_TYPES = {
    ErrorKind.INVALID_REQUEST: "invalid_request_error",
    ErrorKind.UNAUTHENTICATED: "authentication_error",
    ErrorKind.PERMISSION_DENIED: "permission_error",
    ErrorKind.NOT_FOUND: "not_found_error",
    ErrorKind.TOO_LARGE: "request_too_large",
    ErrorKind.RATE_LIMITED: "rate_limit_error",
    ErrorKind.UNAVAILABLE: "api_error",
}

_ROLE_KINDS = {"user": "message", "assistant": "assistant"}

_DELTA_FIELDS = {
    "text_delta": ("text", "text"),
    "input_json_delta": ("tool_input", "partial_json"),
    "thinking_delta": ("thinking", "thinking"),
}
_CHANNEL_DELTAS = {kind: (delta_type, key) for delta_type, (kind, key) in _DELTA_FIELDS.items()}
# Opening blocks whose text continues in the block's deltas: type -> (channel kind, key).
_OPENING_TEXT = {"text": ("text", "text"), "thinking": ("thinking", "thinking")}


class AnthropicMessages(JsonAdapter):
    name = "anthropic.messages"
    terminal_markers: tuple[bytes, ...] = (b"message_stop",)
    json_channels = frozenset({"tool_input"})
    path = "/v1/messages"

    def error_body(self, kind: ErrorKind, message: str) -> bytes:
        return json.dumps(
            {"type": "error", "error": {"type": _ERROR_TYPES[kind], "message": message}}
        ).encode()

    # -- requests

    def request_texts(self, document: Mapping[str, object]) -> list[TextPart]:
        out: list[TextPart] = []
        system = document.get("system")
        if isinstance(system, str):
            out.append(TextPart(("system",), system, "system"))
        else:
            _blocks(system, ("system",), "system", out)
        for i, message in enumerate(as_list(document.get("messages"))):
            role = dig(message, "role")
            kind = _ROLE_KINDS.get(role, "message") if isinstance(role, str) else "message"
            content = dig(message, "content")
            if isinstance(content, str):
                out.append(TextPart(("messages", i, "content"), content, kind))
            else:
                _blocks(content, ("messages", i, "content"), kind, out)
        return out

    # -- non-streamed responses

    def response_texts(self, document: Mapping[str, object]) -> list[TextPart]:
        out: list[TextPart] = []
        _blocks(document.get("content"), ("content",), "output", out)
        return out

    def _document_usage(self, document: Mapping[str, object]) -> Usage | None:
        return _usage(document.get("usage"))

    # -- streamed responses

    def read_event(self, event: SseEvent) -> StreamEvent:
        texts = StreamTexts()
        payload = payload_of(event, "anthropic stream event")
        if payload is None:
            return texts.view(event, None)
        kind = event_type(payload, event, "anthropic stream event")
        if kind == "content_block_delta":
            index = strict_index(payload, "anthropic content_block_delta")
            delta = as_dict(payload.get("delta"))
            if delta is None:
                raise BadResponseBody("anthropic content_block_delta has no delta object")
            delta_type = delta.get("type")
            fields = _DELTA_FIELDS.get(delta_type) if isinstance(delta_type, str) else None
            if fields is not None:
                channel_kind, key = fields
                texts.delta((channel_kind, index), delta.get(key), ("delta", key))
            # Other deltas (signature, citations, new kinds) are swept field by field.
            return texts.view(event, payload, mergeable=True, streaming=True)
        if kind == "content_block_start":
            index = strict_index(payload, "anthropic content_block_start")
            block = as_dict(payload.get("content_block"))
            block_type = dig(block, "type")
            opening = _OPENING_TEXT.get(block_type) if isinstance(block_type, str) else None
            if block is not None and opening is not None:
                # The block's first text continues in its first delta: one channel.
                channel_kind, key = opening
                texts.delta((channel_kind, index), block.get(key), ("content_block", key))
            return texts.view(event, payload)
        if kind == "message_start":
            return texts.view(event, payload, usage=_usage(dig(payload, "message", "usage")))
        if kind == "message_delta":
            return texts.view(event, payload, usage=_usage(payload.get("usage")))
        if kind == "message_stop":
            return texts.view(event, payload, terminal=True)
        if kind == "error":
            message = dig(payload, "error", "message")
            error = message if isinstance(message, str) else "upstream stream error"
            return texts.view(event, payload, error=error)
        return texts.view(event, payload)

    def event_with_text(
        self, template: SseEvent | StreamEvent, channel: Channel, text: str
    ) -> SseEvent:
        """A ``content_block_delta`` carrying `text` for `channel` (any template will do)."""
        view = self.view(template)
        shape = _CHANNEL_DELTAS.get(str(channel[0]))
        if shape is None or len(channel) != 2:
            raise KeyError(f"not an Anthropic messages channel: {channel!r}")
        delta_type, key = shape
        payload = {
            "type": "content_block_delta",
            "index": channel[1],
            "delta": {"type": delta_type, key: text},
        }
        return SseEvent.build(
            dump_json_text(payload), event="content_block_delta", line_ending=view.sse.line_ending
        )

    def error_events(
        self,
        message: str,
        code: str,
        *,
        first: StreamEvent | None = None,
        last: StreamEvent | None = None,
        kind: ErrorKind = ErrorKind.PERMISSION_DENIED,
    ) -> list[SseEvent]:
        """One ``event: error``; the SDK raises anthropic.APIStatusError on reading it."""
        payload = {"type": "error", "error": {"type": _ERROR_TYPES[kind], "message": message}}
        return [
            SseEvent.build(
                dump_json_text(payload), event="error", line_ending=line_ending_of(last, first)
            )
        ]


def _usage(value: object) -> Usage | None:
    usage = as_dict(value)
    if usage is None:
        return None
    return Usage(
        input_tokens=as_int(usage.get("input_tokens")),
        output_tokens=as_int(usage.get("output_tokens")),
    )


def _blocks(content: object, base: tuple[str | int, ...], kind: str, out: list[TextPart]) -> None:
    for j, block in enumerate(as_list(content)):
        block_type = dig(block, "type")
        path = (*base, j)
        if block_type == "text":
            add_string(out, dig(block, "text"), (*path, "text"), kind)
        elif block_type in ("tool_use", "server_tool_use"):
            strings_under(dig(block, "input"), (*path, "input"), "tool_arguments", out)
        elif block_type == "tool_result":
            inner = dig(block, "content")
            if isinstance(inner, str):
                out.append(TextPart((*path, "content"), inner, "tool_result"))
            else:
                _blocks(inner, (*path, "content"), "tool_result", out)
        elif block_type == "document" and dig(block, "source", "type") == "text":
            add_string(out, dig(block, "source", "data"), (*path, "source", "data"), "document")
