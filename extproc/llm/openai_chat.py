"""OpenAI Chat Completions (`POST /v1/chat/completions`): shapes of requests, chunks, errors.

Text the scanner sees:

- request (``request_texts``): every message's ``content`` (a string, or ``text`` /
  ``refusal`` parts), an assistant's ``refusal``, the ``function.arguments`` of each
  ``tool_calls`` entry and of a legacy ``function_call`` in history, tool results
  (``role: tool`` content). Every other string (image URLs, tool descriptions,
  ``metadata``, ``user`` ...) is swept by `extproc.document_guard`.
- stream (``read_event``), one channel per growing text: ``(key, choice)`` for every
  string of a delta but its ``role`` (``content``, ``refusal``, ``reasoning_content``,
  ``reasoning`` ...), ``("tool_arguments", choice, tool_call_index)`` and
  ``("function_call", choice)`` (JSON documents, scanned decoded). Choice and tool call
  numbers are the ``index`` fields, which must be non-negative integers: anything
  else raises BadResponseBody. Every other string is left to the guard's sweep.
- non-streamed response (``response_texts``): ``choices[].message`` likewise.

``data: [DONE]`` is the terminal event. ``usage`` (``prompt_tokens``,
``completion_tokens``) arrives on the last chunk when the request set
``stream_options.include_usage``; other chunks carry ``"usage": null``.

Continuation events (``event_with_text``) carry only the text: no ``role``, tool call
``id``/``type``/``name``, ``finish_reason``, ``logprobs`` or ``usage``. The SDK's
stream helper concatenates every string it sees in a delta, so repeating a role or a
tool name would corrupt the accumulated message.

In-band error (``error_events``): ``data: {"error": {...}}`` then ``data: [DONE]``.
The openai SDK (3.x, ``_streaming.Stream``) raises ``openai.APIError`` with the
error's message as soon as it reads an event whose JSON has a truthy ``error`` key,
before it yields anything from it (verified in tests/unit/llm/test_sdk_errors.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from extproc.llm.base import (
    BadResponseBody,
    Channel,
    Delta,
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
    line_ending_of,
    payload_of,
    strict_index,
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
    "tool": "tool_result",
    "function": "tool_result",
}

_DONE = "[DONE]"


class OpenAIChatCompletions(JsonAdapter):
    name = "openai.chat_completions"
    terminal_markers: tuple[bytes, ...] = (b"[DONE]",)
    json_channels = frozenset({"tool_arguments", "function_call"})
    path = "/v1/chat/completions"

    def error_body(self, kind: ErrorKind, message: str) -> bytes:
        return openai_error_body(kind, message)

    # -- requests

    def request_texts(self, document: Mapping[str, object]) -> list[TextPart]:
        out: list[TextPart] = []
        for i, message in enumerate(as_list(document.get("messages"))):
            msg = as_dict(message)
            if msg is None:
                continue
            role = msg.get("role")
            kind = _ROLE_KINDS.get(role, "message") if isinstance(role, str) else "message"
            _message_texts(msg, ("messages", i), kind, out)
        return out

    # -- non-streamed responses

    def response_texts(self, document: Mapping[str, object]) -> list[TextPart]:
        out: list[TextPart] = []
        for i, choice in enumerate(as_list(document.get("choices"))):
            message = as_dict(dig(choice, "message"))
            if message is not None:
                _message_texts(message, ("choices", i, "message"), "output", out)
        return out

    def _document_usage(self, document: Mapping[str, object]) -> Usage | None:
        return _usage(document.get("usage"))

    # -- streamed responses

    def read_event(self, event: SseEvent) -> StreamEvent:
        texts = StreamTexts()
        if event.data is not None and event.data.startswith(_DONE):
            # The SDK stops at any data starting with [DONE]; so does Weir.
            return texts.view(event, None, terminal=True)
        payload = payload_of(event, "chat completion chunk")
        if payload is None:
            return texts.view(event, None)
        simple = _read_content_chunk(event, payload)
        if simple is not None:
            return simple
        error = as_dict(payload.get("error"))
        if payload.get("error"):
            message = error.get("message") if error is not None else None
            return texts.view(
                event,
                payload,
                error=message if isinstance(message, str) else "upstream stream error",
            )
        choices = payload.get("choices", [])
        if not isinstance(choices, list):
            raise BadResponseBody("chat completion chunk 'choices' must be a list")
        for position, choice in enumerate(choices):
            entry = as_dict(choice)
            if entry is None:
                raise BadResponseBody("chat completion chunk choice must be an object")
            number = strict_index(entry, "chat completion chunk choice")
            delta = as_dict(entry.get("delta"))
            if delta is None:
                continue
            base = ("choices", position, "delta")
            # Every string of the delta but its role is text that grows chunk by chunk
            # (content, refusal, reasoning_content, reasoning ...): each its own channel.
            for key, value in delta.items():
                if key != "role" and isinstance(value, str):
                    texts.delta((key, number), value, (*base, key))
            for t_position, call in enumerate(as_list(delta.get("tool_calls"))):
                call_dict = as_dict(call)
                if call_dict is None:
                    raise BadResponseBody("chat completion chunk tool call must be an object")
                call_number = strict_index(call_dict, "chat completion chunk tool call")
                function = as_dict(call_dict.get("function"))
                if function is not None:
                    texts.delta(
                        ("tool_arguments", number, call_number),
                        function.get("arguments"),
                        (*base, "tool_calls", t_position, "function", "arguments"),
                    )
            legacy = as_dict(delta.get("function_call"))
            if legacy is not None:
                texts.delta(
                    ("function_call", number),
                    legacy.get("arguments"),
                    (*base, "function_call", "arguments"),
                )
        return texts.view(
            event,
            payload,
            usage=_usage(payload.get("usage")),
            mergeable=_mergeable(payload),
            streaming=True,
        )

    def event_with_text(
        self, template: SseEvent | StreamEvent, channel: Channel, text: str
    ) -> SseEvent:
        """A chunk like `template` (id, model, created ...) carrying only `text` for `channel`."""
        view = self.view(template)
        payload = template_payload(view)
        kind, number = channel[0], channel[1]
        delta: dict[str, object]
        if kind == "tool_arguments":
            delta = {"tool_calls": [{"index": channel[2], "function": {"arguments": text}}]}
        elif kind == "function_call":
            delta = {"function_call": {"arguments": text}}
        elif isinstance(kind, str) and len(channel) == 2:
            delta = {kind: text}  # content, refusal, reasoning_content ...
        else:
            raise KeyError(f"not an OpenAI chat channel: {channel!r}")
        choice: dict[str, object] = {"index": number, "delta": delta, "finish_reason": None}
        new = {key: value for key, value in payload.items() if key not in ("choices", "usage")}
        new["choices"] = [choice]
        if "usage" in payload:
            new["usage"] = None
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
        """``data: {"error": ...}`` and ``data: [DONE]``: the SDK raises openai.APIError."""
        eol = line_ending_of(last, first)
        error = {"message": message, "type": ERROR_TYPES[kind], "param": None, "code": code}
        return [
            SseEvent.build(json.dumps({"error": error}), line_ending=eol),
            SseEvent.build(_DONE, line_ending=eol),
        ]


_CONTENT_PATH = ("choices", 0, "delta", "content")


def _read_content_chunk(event: SseEvent, payload: dict[str, object]) -> StreamEvent | None:
    """The view of a plain content chunk, the bulk of every stream, without the general walk.

    Exactly what the general path in `read_event` gives for the same chunk (a property
    test holds the two together); None for any other shape.
    """
    choices = payload.get("choices")
    if type(choices) is not list or len(choices) != 1 or payload.get("error"):
        return None
    choice = choices[0]
    if type(choice) is not dict:
        return None
    delta = choice.get("delta")
    if type(delta) is not dict or len(delta) != 1:
        return None
    content = delta.get("content")
    if type(content) is not str or not content:
        return None
    index = choice.get("index")
    if type(index) is not int or index < 0:
        return None  # the general walk refuses it
    channel: Channel = ("content", index)
    usage = payload.get("usage")
    return StreamEvent(
        sse=event,
        payload=payload,
        deltas=(Delta(channel, content),),
        usage=None if usage is None else _usage(usage),
        paths={channel: (_CONTENT_PATH,)},
        # The delta is one content fragment: checked above.
        mergeable=(mergeable := _only_text_besides(payload, choice)),
        streaming=True,
        # Then the rest is id, model ...: structural fields at the top level.
        plain=mergeable,
    )


# Chunk fields every chunk of a stream repeats; losing one chunk's copy loses nothing.
_REPEATED_FIELDS = frozenset(
    {"id", "object", "created", "model", "system_fingerprint", "service_tier", "obfuscation",
     "choices", "usage"}
)

_CHOICE_FIELDS = frozenset({"index", "delta", "logprobs", "finish_reason"})


def _only_text_besides(payload: Mapping[str, object], choice: Mapping[str, object]) -> bool:
    """Chunk and choice carry nothing but repeated fields: no usage, finish reason, logprobs."""
    return (
        payload.get("usage") is None
        and _REPEATED_FIELDS.issuperset(payload)
        and choice.get("finish_reason") is None
        and not choice.get("logprobs")
        and _CHOICE_FIELDS.issuperset(choice)
    )


def _mergeable(payload: Mapping[str, object]) -> bool:
    """One choice, one fragment of content, refusal or tool arguments, and nothing else.

    A tool call's first delta (id, name, type), a role, a finish reason, logprobs or
    usage make the chunk carry more than text, so it stays whole.
    """
    choices = payload.get("choices")
    if not isinstance(choices, list) or len(choices) != 1:
        return False
    choice = choices[0]
    if not isinstance(choice, dict) or not _only_text_besides(payload, choice):
        return False
    delta = choice.get("delta")
    if not isinstance(delta, dict) or len(delta) != 1:
        return False
    [(key, value)] = delta.items()
    if key != "role" and isinstance(value, str):
        return True  # content, refusal, reasoning_content ...
    calls = delta.get("tool_calls")
    if not isinstance(calls, list) or len(calls) != 1 or not isinstance(calls[0], dict):
        return False
    function = calls[0].get("function")
    return (
        set(calls[0]) == {"index", "function"}
        and isinstance(function, dict)
        and set(function) == {"arguments"}
    )


def _usage(value: object) -> Usage | None:
    usage = as_dict(value)
    if usage is None:
        return None
    return Usage(
        input_tokens=as_int(usage.get("prompt_tokens")),
        output_tokens=as_int(usage.get("completion_tokens")),
    )


def _message_texts(
    message: Mapping[str, object], base: tuple[str | int, ...], kind: str, out: list[TextPart]
) -> None:
    content = message.get("content")
    if isinstance(content, str):
        out.append(TextPart((*base, "content"), content, kind))
    else:
        for j, part in enumerate(as_list(content)):
            part_dict = as_dict(part)
            if part_dict is None:
                continue
            for key in ("text", "refusal"):
                if part_dict.get("type") == key:
                    add_string(out, part_dict.get(key), (*base, "content", j, key), kind)
    add_string(out, message.get("refusal"), (*base, "refusal"), kind)
    for k, call in enumerate(as_list(message.get("tool_calls"))):
        path = (*base, "tool_calls", k, "function", "arguments")
        add_string(out, dig(call, "function", "arguments"), path, "tool_arguments", json=True)
    legacy_path = (*base, "function_call", "arguments")
    add_string(
        out, dig(message, "function_call", "arguments"), legacy_path, "tool_arguments", json=True
    )
