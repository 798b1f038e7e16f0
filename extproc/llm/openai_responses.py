"""OpenAI Responses (`POST /v1/responses`): shapes of requests, stream events, errors.

Text the scanner sees:

- request (``request_texts``): ``instructions``; ``input`` as a string, or as items:
  messages (string content, or ``input_text``/``output_text``/``refusal`` parts),
  ``function_call`` arguments and ``custom_tool_call`` input in history (kind
  ``tool_arguments``), ``function_call_output``/``custom_tool_call_output`` output (a
  string or text parts, kind ``tool_result``). Reasoning items (encrypted) are not.
- stream (``read_event``), one channel per growing text:
  ``("text", output_index, content_index)`` for ``response.output_text.delta``,
  ``("refusal", output_index, content_index)`` for ``response.refusal.delta``,
  ``("arguments", output_index)`` for ``response.function_call_arguments.delta``,
  ``("custom_input", output_index)`` for ``response.custom_tool_call_input.delta``.
  The text of ``content_part.added`` and ``output_item.added`` opens the channel
  (a delta); other ``.delta`` events (reasoning, transcripts ...) are marked streaming
  and their strings swept onto channels of their own. A ``type`` missing or unlike
  the SSE ``event:`` name, or a position that is not a non-negative integer, raises
  BadResponseBody.
- non-streamed response (``response_texts``): ``output[]`` message text and refusal
  parts, function call arguments, custom tool input, with locators under ``output``.

**Snapshots.** This API repeats the whole text in later events: the ``.done`` events
(``response.output_text.done``, ``response.function_call_arguments.done`` ...),
``response.content_part.added/done``, ``response.output_item.added/done``, and the
``response`` object of ``response.created``/``in_progress``/``completed``/``failed``/
``incomplete``. They (the ``.added`` events excepted) are reported as
``StreamEvent.snapshots`` on the same channels,
and must be rewritten to the released (redacted) text, or the original text leaks.

Usage: ``response.usage`` (``input_tokens``, ``output_tokens``) on ``response.completed``
(also ``incomplete``/``failed``). Terminal events: ``response.completed``,
``response.failed``, ``response.incomplete``.

Continuations (``event_with_text``) copy the template delta event (``item_id``,
``sequence_number`` ...) with the new text and no logprobs. Sequence numbers then
repeat; the SDK only reads them to resume a stream (``starting_after``), which does not
pass through Weir.

In-band error (``error_events``): ``event: error`` whose data has both the documented
flat fields (``code``, ``message``, ``param``, ``sequence_number``) and the nested
``error`` object the live API sends; then ``event: response.failed`` with the response
modelled on ``first`` (the ``response.created`` event), ``status: "failed"``, no output.
The openai SDK (3.x) raises ``openai.APIError`` on the ``error`` event because its data
has a truthy top-level ``error`` key (the flat documented shape alone would be yielded
as a ``ResponseErrorEvent`` and not raise); verified in tests/unit/llm/test_sdk_errors.py.
"""

from __future__ import annotations

from collections.abc import Mapping

from extproc.llm.base import (
    BadResponseBody,
    Channel,
    ErrorKind,
    JsonAdapter,
    JsonPath,
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
    template_payload,
)
from extproc.llm.openai_errors import ERROR_TYPES
from extproc.llm.openai_errors import error_body as openai_error_body
from extproc.sse import SseEvent

_ROLE_KINDS = {
    "system": "system",
    "developer": "system",
    "user": "message",
    "assistant": "assistant",
}

# Delta events: type -> (channel kind, has content_index).
_DELTAS = {
    "response.output_text.delta": ("text", True),
    "response.refusal.delta": ("refusal", True),
    "response.function_call_arguments.delta": ("arguments", False),
    "response.custom_tool_call_input.delta": ("custom_input", False),
}
_DELTA_TYPE_OF = {kind: event_type for event_type, (kind, _) in _DELTAS.items()}

# Done events that repeat one channel's whole text: type -> (channel kind, field).
_DONES = {
    "response.output_text.done": ("text", "text"),
    "response.refusal.done": ("refusal", "refusal"),
    "response.function_call_arguments.done": ("arguments", "arguments"),
    "response.custom_tool_call_input.done": ("custom_input", "input"),
}

_RESPONSE_EVENTS = {
    "response.created",
    "response.in_progress",
    "response.queued",
    "response.completed",
    "response.failed",
    "response.incomplete",
}
_TERMINAL = {"response.completed", "response.failed", "response.incomplete"}


class OpenAIResponses(JsonAdapter):
    name = "openai.responses"
    terminal_markers: tuple[bytes, ...] = tuple(t.encode() for t in _TERMINAL)
    # `.done` events and `response.completed` carry each output's full text again.
    repeats_streamed_text = True
    path = "/v1/responses"
    json_channels = frozenset({"arguments"})

    def error_body(self, kind: ErrorKind, message: str) -> bytes:
        return openai_error_body(kind, message)

    # -- requests

    def request_texts(self, document: Mapping[str, object]) -> list[TextPart]:
        out: list[TextPart] = []
        add_string(out, document.get("instructions"), ("instructions",), "system")
        items = document.get("input")
        if isinstance(items, str):
            out.append(TextPart(("input",), items, "message"))
            return out
        for i, item in enumerate(as_list(items)):
            entry = as_dict(item)
            if entry is None:
                continue
            base: JsonPath = ("input", i)
            item_type = entry.get("type")
            if item_type in ("function_call", "custom_tool_call"):
                key = "arguments" if item_type == "function_call" else "input"
                add_string(out, entry.get(key), (*base, key), "tool_arguments",
                           json=item_type == "function_call")
            elif item_type in ("function_call_output", "custom_tool_call_output"):
                _content(entry.get("output"), (*base, "output"), "tool_result", out)
            elif item_type in (None, "message"):
                role = entry.get("role")
                kind = _ROLE_KINDS.get(role, "message") if isinstance(role, str) else "message"
                _content(entry.get("content"), (*base, "content"), kind, out)
        return out

    # -- non-streamed responses

    def response_texts(self, document: Mapping[str, object]) -> list[TextPart]:
        out: list[TextPart] = []
        for channel, text, path in _output_texts(document.get("output"), ("output",)):
            kind = "tool_arguments" if channel[0] in ("arguments", "custom_input") else "output"
            out.append(TextPart(path, text, kind, channel[0] == "arguments"))
        return out

    def _document_usage(self, document: Mapping[str, object]) -> Usage | None:
        return _usage(document.get("usage"))

    # -- streamed responses

    def read_event(self, event: SseEvent) -> StreamEvent:
        texts = StreamTexts()
        payload = payload_of(event, "responses stream event")
        if payload is None:
            return texts.view(event, None)
        event_type = _event_type(payload, event, "responses stream event")
        output_index = _placed(payload, "output_index", event_type)
        delta_shape = _DELTAS.get(event_type)
        if delta_shape is not None:
            kind, has_part = delta_shape
            channel = _channel(kind, _required(output_index, event_type),
                               payload if has_part else None)
            texts.delta(channel, payload.get("delta"), ("delta",))
            # Logprobs belong to this event's own tokens: such an event stays whole.
            return texts.view(event, payload, mergeable=not payload.get("logprobs"),
                              streaming=True)
        done_shape = _DONES.get(event_type)
        if done_shape is not None:
            kind, key = done_shape
            channel = _channel(kind, _required(output_index, event_type),
                               payload if kind in ("text", "refusal") else None)
            texts.snapshot(channel, payload.get(key), (key,))
            return texts.view(event, payload)
        if event_type in ("response.content_part.added", "response.content_part.done"):
            content_index = _required(_placed(payload, "content_index", event_type), event_type)
            found = _part_texts(payload.get("part"), _required(output_index, event_type),
                                content_index, ("part",))
            # A part's opening text continues in its first delta: the same channel.
            add = texts.delta if event_type.endswith(".added") else texts.snapshot
            for channel, text, path in found:
                add(channel, text, path)
            return texts.view(event, payload)
        if event_type in ("response.output_item.added", "response.output_item.done"):
            found = _item_texts(payload.get("item"), _required(output_index, event_type),
                                ("item",))
            add = texts.delta if event_type.endswith(".added") else texts.snapshot
            for channel, text, path in found:
                add(channel, text, path)
            return texts.view(event, payload)
        if event_type.endswith(".delta"):
            # A delta Weir has no channel for (reasoning text, summaries, transcripts ...):
            # its strings are swept, each a stream channel of its own.
            return texts.view(event, payload, streaming=True)
        if event_type in _RESPONSE_EVENTS:
            response = payload.get("response")
            for channel, text, path in _output_texts(
                dig(response, "output"), ("response", "output")
            ):
                texts.snapshot(channel, text, path)
            error = None
            if event_type == "response.failed":
                message = dig(response, "error", "message")
                error = message if isinstance(message, str) else "upstream response failed"
            return texts.view(
                event,
                payload,
                usage=_usage(dig(response, "usage")),
                terminal=event_type in _TERMINAL,
                error=error,
            )
        if event_type == "error" or payload.get("error"):
            message = payload.get("message")
            if not isinstance(message, str):
                message = dig(payload, "error", "message")
            error = message if isinstance(message, str) else "upstream stream error"
            return texts.view(event, payload, error=error)
        return texts.view(event, payload)

    def event_with_text(
        self, template: SseEvent | StreamEvent, channel: Channel, text: str
    ) -> SseEvent:
        """A delta event for `channel` carrying `text`, copied from `template`.

        The template must be a delta event of the channel's kind (the one that carried
        the held text is the natural choice): it supplies ``item_id`` and the event name.
        """
        view = self.view(template)
        payload = template_payload(view)
        event_type = _DELTA_TYPE_OF.get(str(channel[0]))
        if event_type is None:
            raise KeyError(f"not an OpenAI responses channel: {channel!r}")
        if payload.get("type") != event_type:
            raise ValueError(f"a {event_type} template is needed for channel {channel!r}")
        new = dict(payload)
        new["output_index"] = channel[1]
        if len(channel) > 2:
            new["content_index"] = channel[2]
        new["delta"] = text
        if "logprobs" in new:
            new["logprobs"] = []
        return view.sse.with_data(dump_json_text(new))

    def error_events(
        self,
        message: str,
        code: str,
        *,
        first: StreamEvent | None = None,
        last: StreamEvent | None = None,
        kind: ErrorKind = ErrorKind.PERMISSION_DENIED,
    ) -> list[SseEvent]:
        """``error`` then ``response.failed``; the SDK raises openai.APIError on the first."""
        eol = line_ending_of(last, first)
        last_number = as_int(dig(last.payload, "sequence_number")) if last is not None else None
        number = 0 if last_number is None else last_number + 1
        error = {
            "type": "error",
            "code": code,
            "message": message,
            "param": None,
            "sequence_number": number,
            "error": {"type": ERROR_TYPES[kind], "code": code, "message": message, "param": None},
        }
        response: dict[str, object] = {}
        started = as_dict(dig(first.payload, "response")) if first is not None else None
        if started is not None:
            response.update(started)
        else:
            response.update({"id": "resp_weir", "object": "response", "created_at": 0, "model": ""})
        # The ResponseError code is a closed list; none says "blocked by policy", and
        # server_error is what a client already handles. The message carries Weir's reason.
        response.update(
            status="failed",
            error={"code": "server_error", "message": message},
            output=[],
            usage=None,
        )
        failed = {"type": "response.failed", "response": response, "sequence_number": number + 1}
        return [
            SseEvent.build(dump_json_text(error), event="error", line_ending=eol),
            SseEvent.build(dump_json_text(failed), event="response.failed", line_ending=eol),
        ]


def _channel(
    kind: str, output_index: int, part_source: Mapping[str, object] | None
) -> Channel:
    if part_source is None:
        return (kind, output_index)
    content_index = _required(_placed(part_source, "content_index", kind), kind)
    return (kind, output_index, content_index)


def _event_type(payload: Mapping[str, object], event: SseEvent, what: str) -> str:
    kind = payload.get("type")
    if kind is None and event.event is None and payload.get("error"):
        return "error"  # the bare error shape some servers send
    return event_type(payload, event, what)


def _placed(payload: Mapping[str, object], key: str, what: str) -> int | None:
    """A position field: absent (None) or a non-negative integer; anything else fails."""
    if key not in payload:
        return None
    value = payload[key]
    if type(value) is not int or value < 0:
        raise BadResponseBody(f"responses event {what!r}: '{key}' must be a non-negative integer")
    return value


def _required(value: int | None, what: str) -> int:
    if value is None:
        raise BadResponseBody(f"responses event {what!r} lacks the position of its text")
    return value


def _usage(value: object) -> Usage | None:
    usage = as_dict(value)
    if usage is None:
        return None
    return Usage(
        input_tokens=as_int(usage.get("input_tokens")),
        output_tokens=as_int(usage.get("output_tokens")),
    )


def _content(content: object, base: JsonPath, kind: str, out: list[TextPart]) -> None:
    if isinstance(content, str):
        out.append(TextPart(base, content, kind))
        return
    for j, part in enumerate(as_list(content)):
        part_type = dig(part, "type")
        if part_type in ("input_text", "output_text", "text"):
            add_string(out, dig(part, "text"), (*base, j, "text"), kind)
        elif part_type == "refusal":
            add_string(out, dig(part, "refusal"), (*base, j, "refusal"), kind)


Found = tuple[Channel, str, JsonPath]


def _part_texts(part: object, output_index: int, content_index: int, path: JsonPath) -> list[Found]:
    part_type = dig(part, "type")
    key = "text" if part_type == "output_text" else "refusal" if part_type == "refusal" else None
    if key is None:
        return []
    text = dig(part, key)
    if not isinstance(text, str):
        return []
    kind = "text" if key == "text" else "refusal"
    return [((kind, output_index, content_index), text, (*path, key))]


def _item_texts(item: object, output_index: int, path: JsonPath) -> list[Found]:
    item_type = dig(item, "type")
    if item_type == "message":
        found: list[Found] = []
        for ci, part in enumerate(as_list(dig(item, "content"))):
            found += _part_texts(part, output_index, ci, (*path, "content", ci))
        return found
    for kind, key, wanted in (
        ("arguments", "arguments", "function_call"),
        ("custom_input", "input", "custom_tool_call"),
    ):
        if item_type == wanted:
            text = dig(item, key)
            return [((kind, output_index), text, (*path, key))] if isinstance(text, str) else []
    return []


def _output_texts(output: object, path: JsonPath) -> list[Found]:
    found: list[Found] = []
    for oi, item in enumerate(as_list(output)):
        found += _item_texts(item, oi, (*path, oi))
    return found
