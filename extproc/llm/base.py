"""What every provider adapter offers the exchange state machine.

An adapter knows one LLM API: how to recognise its requests, how to read the
fields policy cares about (model, stream) from a request body, and how that
provider spells an error, so that the official SDK raises its own typed error
when Weir refuses a call.

It also knows where the text is. Adapters are pure (sans-I/O, no per-stream
state): JSON documents and `SseEvent` values in, `TextPart`/`Delta` values and
rewritten bytes or events out. This module owns the shared value types
(`TextPart`, `Delta`, `Usage`, `StreamEvent`), the JSON helpers they rest on,
and the `Provider` protocol; each API's module owns its shapes.

How the exchange state machine uses an adapter (``p``)::

    document = parse_json_object(body)                       # request
    parts = p.request_texts(document)                        # [TextPart(locator, text, kind)]
    body = p.rewrite_request(document, {part.locator: redacted, ...})

    view = p.read_event(sse_event)                           # once per SSE event
    for d in view.deltas: scanner.feed(d.channel, d.text)    # per-channel streams
    out = p.rewrite_event(view, {channel: releasable_text})  # original bytes if unchanged
    later = p.event_with_text(view, channel, held_text)      # continuation, same shape
    usage = usage.merged(view.usage); done = view.terminal
    on block: p.error_events(message, code, first=first_view, last=last_view)
                                                             # then end the body

Each method's exact contract is in its adapter module's docstring (channels, snapshots,
what the SDK does with the error events).

Non-streamed responses: ``p.response_texts(document)`` and
``p.rewrite_response(document, replacements)``, with locators as for requests.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

import orjson

from extproc.sse import SseEvent


class ErrorKind(Enum):
    """The refusals Weir makes, each with the HTTP status the SDKs map to a typed error."""

    INVALID_REQUEST = 400
    UNAUTHENTICATED = 401  # an end-user token or JWT-SVID missing where required, or invalid
    PERMISSION_DENIED = 403
    NOT_FOUND = 404
    TOO_LARGE = 413
    RATE_LIMITED = 429  # a token budget is spent (`extproc.budget_gate`)
    UNAVAILABLE = 503

    @property
    def status(self) -> int:
        return self.value


@dataclass(frozen=True, slots=True)
class LlmRequest:
    model: str
    stream: bool


class BadRequestBody(ValueError):
    """The body cannot be judged: the reason is safe to show to the caller."""


# Python's json module recurses per nesting level; a hostile body of "[[[[..." would
# otherwise cost a RecursionError deep inside the parser. 128 is far beyond any real API body.
MAX_JSON_DEPTH = 128


def _json_depth_exceeds(text: str, limit: int) -> bool:
    # Depth never exceeds the number of openers; counting them runs in C, so the exact
    # per-character walk below only runs for the rare text with many brackets.
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    in_string = False
    escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


EMPTY_BODY_REASON = "request body is empty; a JSON object is required"


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # Weir judges the document it parsed and forwards the original bytes: with a key
    # twice, the upstream's parser might read the copy Weir did not. Refused instead.
    document = dict(pairs)
    if len(document) != len(pairs):
        raise BadRequestBody("request body has an object with a duplicate key")
    return document


def parse_json_object(body: bytes) -> dict[str, object]:
    """Strict UTF-8 JSON object, or BadRequestBody naming what is wrong (never the content)."""
    if not body:
        raise BadRequestBody(EMPTY_BODY_REASON)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequestBody(f"request body is not valid UTF-8 (byte offset {exc.start})") from exc
    if _json_depth_exceeds(text, MAX_JSON_DEPTH):
        raise BadRequestBody(f"request body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        document = json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise BadRequestBody(
            f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    if not isinstance(document, dict):
        raise BadRequestBody("request body must be a JSON object")
    return document


def read_model_and_stream(document: dict[str, object]) -> LlmRequest:
    model = document.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequestBody("'model' is required and must be a non-empty string")
    stream = document.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise BadRequestBody("'stream' must be a boolean")
    return LlmRequest(model=model, stream=stream)


# --- Text extraction and rewriting --------------------------------------------------------
#
# The scanner needs the text of a request or response, and the pipeline must put redacted
# text back without disturbing anything else. Adapters describe where each text lives:
#
# - in a JSON document (a request body, a non-streamed response) by a *locator*: the path
#   of keys and list positions from the document root to the string;
# - in a stream by a *channel*: a hashable name for one growing text (a choice's content, a
#   tool call's arguments, a content block). Its first element names the kind of text.

JsonPath = tuple[str | int, ...]
Locator = JsonPath
Channel = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class TextPart:
    """One string in a JSON document that the scanner must see.

    ``kind`` says what the text is (``"message"``, ``"system"``, ``"tool_result"``,
    ``"tool_arguments"``, ``"output"`` ...) so that policy can tell them apart.
    """

    locator: Locator
    text: str
    kind: str
    json: bool = False  # the text is a JSON document (tool-call arguments): read it decoded


@dataclass(frozen=True, slots=True)
class Delta:
    """Text for one channel carried by one stream event."""

    channel: Channel
    text: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as the provider reports them; None where an event does not say.

    Providers report cumulative figures (Anthropic's ``message_delta`` repeats the running
    output count), so the figures for a stream are the latest non-None value of each field:
    `merged` does that.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None

    def merged(self, later: Usage | None) -> Usage:
        if later is None:
            return self
        return Usage(
            input_tokens=self.input_tokens if later.input_tokens is None else later.input_tokens,
            output_tokens=(
                self.output_tokens if later.output_tokens is None else later.output_tokens
            ),
        )


class BadResponseBody(ValueError):
    """A response event or body the adapter cannot read (invalid JSON, wrong shape).

    The message never quotes the content. The pipeline fails closed on it.
    """


def parse_response_json(text: str, what: str) -> object:
    if _json_depth_exceeds(text, MAX_JSON_DEPTH):
        raise BadResponseBody(f"{what} nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        # orjson is several times faster on token events, and stricter: what it refuses
        # (NaN, lone surrogate escapes, numbers past a double) the standard parser decides.
        # It reads an integer past 64 bits as a float; no provider field comes near that.
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadResponseBody(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc


def parse_response_body(body: bytes) -> dict[str, object]:
    """A non-streamed response body as a JSON object, or BadResponseBody."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadResponseBody(
            f"response body is not valid UTF-8 (byte offset {exc.start})"
        ) from exc
    document = parse_response_json(text, "response body")
    if not isinstance(document, dict):
        raise BadResponseBody("response body must be a JSON object")
    return document


def dump_json(document: object) -> bytes:
    """Compact JSON in UTF-8, as the providers send it."""
    try:
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (legal in JSON text as an escape) cannot be UTF-8: escape it again.
        return json.dumps(document, separators=(",", ":")).encode("ascii")


def replace_strings(document: object, replacements: Mapping[JsonPath, str]) -> object:
    """A copy of `document` with the string at each path replaced.

    Only the containers along the replaced paths are copied; the input is not modified.
    A path that does not lead to a string raises KeyError: the caller's locators must come
    from the same document.
    """
    return replace_values(document, replacements, strings_only=True)


def replace_values(
    document: object, replacements: Mapping[JsonPath, object], *, strings_only: bool = False
) -> object:
    """A copy of `document` with the value at each path replaced (see replace_strings)."""
    if not replacements:
        return document
    root: object = _shallow_copy(document)
    copied: set[JsonPath] = {()}
    for path, text in replacements.items():
        if not path:
            raise KeyError("an empty locator names no string")
        node = root
        for depth, key in enumerate(path[:-1]):
            child = _step(node, key, path)
            prefix = path[: depth + 1]
            if prefix not in copied:
                child = _shallow_copy(child)
                _assign(node, key, child)
                copied.add(prefix)
            node = child
        if strings_only and not isinstance(_step(node, path[-1], path), str):
            raise KeyError(f"locator {path!r} does not name a string")
        _step(node, path[-1], path)
        _assign(node, path[-1], text)
    return root


def _shallow_copy(node: object) -> object:
    if isinstance(node, dict):
        return dict(node)
    if isinstance(node, list):
        return list(node)
    return node


def _step(node: object, key: str | int, path: JsonPath) -> object:
    if isinstance(node, dict) and isinstance(key, str) and key in node:
        return node[key]
    if isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
        return node[key]
    raise KeyError(f"locator {path!r} does not fit the document")


def _assign(node: object, key: str | int, value: object) -> None:
    if isinstance(node, list):
        assert isinstance(key, int)  # _step checked it
        node[key] = value
    elif isinstance(node, dict):
        node[key] = value


@dataclass(slots=True)  # not frozen: a frozen __init__ costs a microsecond per token event
class StreamEvent:
    """An SSE event as one provider reads it: what the pipeline needs, parsed once.

    - ``deltas``: text increments, in order; several may share a channel when one
      event carries several fragments of it.
    - ``snapshots``: whole texts so far of a channel (OpenAI responses repeats the full
      text in its ``.done`` events and in ``response.completed``; Anthropic's
      ``content_block_start`` may carry initial text). The pipeline must replace each
      with the text it has released for that channel, or the unredacted text leaks.
    - ``usage``: token counts this event reports, if any.
    - ``terminal``: the provider's normal end-of-stream event.
    - ``error``: the message of an in-band error the *upstream* sent, if this is one.
    - ``payload``: the parsed JSON of ``data`` (None for ``[DONE]``, comments, pings).
    - ``paths``: where each channel's text sits in ``payload``; used by rewrite_event.
    - ``mergeable``: the event is one text fragment and nothing else a client needs, so
      its text may travel in a later event of the same channel instead (the pipeline
      coalesces runs of such events, and drops one whose text is all held back).
    """

    sse: SseEvent
    payload: object = None
    deltas: tuple[Delta, ...] = ()
    snapshots: tuple[Delta, ...] = ()
    usage: Usage | None = None
    terminal: bool = False
    error: str | None = None
    paths: Mapping[Channel, tuple[JsonPath, ...]] = field(default_factory=dict)
    mergeable: bool = False
    # The event is one step of growing texts (a delta): strings the adapter does not
    # name continue in later events of the same shape, so each gets a stream channel.
    streaming: bool = False
    # The adapter checked that every field but the text is a structural one at the top
    # level (its fast path for plain token chunks): the sweep need only check their shapes.
    plain: bool = False

    @property
    def texts(self) -> tuple[Delta, ...]:
        return self.deltas + self.snapshots


def payload_of(event: SseEvent, what: str) -> dict[str, object] | None:
    """The JSON object in an event's data; None when the event carries no data."""
    if event.data is None or event.data == "":
        return None
    payload = parse_response_json(event.data, what)
    if not isinstance(payload, dict):
        raise BadResponseBody(f"{what} data must be a JSON object")
    return payload


def rewrite_stream_event(
    view: StreamEvent,
    new_texts: Mapping[Channel, str],
    values: Mapping[JsonPath, object] | None = None,
) -> SseEvent:
    """`view`'s event with each named channel's text replaced (the shared rewrite_event).

    When a channel has several fragments in the event, the new text goes into the first
    and the others are emptied. `values` replaces any other value by its path (a swept
    field's released text, a withheld ``logprobs``). Returns the original event,
    byte-exact, when nothing changes.
    """
    replacements: dict[JsonPath, object] = dict(values) if values else {}
    current = _texts_by_channel(view)
    for channel, text in new_texts.items():
        paths = view.paths.get(channel)
        if not paths:
            raise KeyError(f"event carries no text for channel {channel!r}")
        if current.get(channel, "") == text and len(paths) == 1:
            continue
        replacements[paths[0]] = text
        for extra in paths[1:]:
            replacements[extra] = ""
    if not replacements:
        return view.sse
    if len(replacements) == 1 and view.sse.data is not None:
        [(path, value)] = replacements.items()
        if isinstance(value, str):
            spliced = _spliced(view.sse.data, view.payload, path, value)
            if spliced is not None:
                return view.sse.with_data(spliced)
    payload = replace_values(view.payload, replacements)
    return view.sse.with_data(dump_json(payload).decode("utf-8"))


def _spliced(data: str, payload: object, path: JsonPath, text: str) -> str | None:
    """`data` with the one string at `path` replaced in place, or None.

    Re-serialising a token event costs more than everything else done to it; swapping
    the one JSON string literal keeps the upstream's own formatting and is far cheaper.
    It is used only when it provably gives the intended document: the old literal occurs
    exactly once, and the result parses to the payload with just that string changed
    (checked by putting the old string back and comparing the parsed documents).
    Anything else falls back to a dump.
    """
    if not path:
        return None
    try:
        old = _step(_step_to(payload, path[:-1]), path[-1], path)
    except KeyError:
        return None
    if not isinstance(old, str):
        return None
    try:
        new_literal = orjson.dumps(text).decode()
        literal = orjson.dumps(old).decode()
    except TypeError:
        return None  # a lone surrogate, which orjson will not write: dump_json copes
    if data.count(literal) != 1:
        # The upstream may escape non-ASCII; try that spelling only when needed.
        literal = json.dumps(old)
    if data.count(literal) != 1:
        return None
    candidate = data.replace(literal, new_literal)
    try:
        document = orjson.loads(candidate)
        new_parent = _step_to(document, path[:-1])
        if _step(new_parent, path[-1], path) != text:
            return None
    except (ValueError, KeyError):
        return None
    _assign(new_parent, path[-1], old)
    return candidate if document == payload else None


def _step_to(document: object, path: JsonPath) -> object:
    node = document
    for key in path:
        node = _step(node, key, path)
    return node


def _texts_by_channel(view: StreamEvent) -> dict[Channel, str]:
    joined: dict[Channel, str] = {}
    for part in view.texts:
        joined[part.channel] = joined.get(part.channel, "") + part.text
    return joined


def strings_under(node: object, path: JsonPath, kind: str, out: list[TextPart]) -> None:
    """Every string leaf under `node` (values, not keys): for tool inputs given as objects."""
    if isinstance(node, str):
        out.append(TextPart(path, node, kind))
    elif isinstance(node, dict):
        for key, value in node.items():
            strings_under(value, (*path, key), kind, out)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            strings_under(value, (*path, index), kind, out)


class Provider(Protocol):
    """One LLM API. Every method is pure; see the module docstring for the call sequence."""

    name: str
    path: str
    # The API repeats a streamed channel's whole text later (snapshots), so the pipeline
    # must remember what it released to put in its place.
    repeats_streamed_text: bool
    # Bytes that every end-of-stream event of the API contains: a cheap prefilter for a
    # reader that decodes only the events it needs.
    terminal_markers: tuple[bytes, ...]
    # Channel kinds whose text is a JSON document (tool-call arguments): scanned decoded.
    json_channels: frozenset[str]

    def matches(self, method: str, path: str) -> bool: ...

    def parse_request(self, body: bytes) -> LlmRequest: ...

    def error_body(self, kind: ErrorKind, message: str) -> bytes: ...

    # -- requests
    def request_texts(self, document: Mapping[str, object]) -> list[TextPart]: ...

    def rewrite_request(
        self, document: Mapping[str, object], replacements: Mapping[Locator, str]
    ) -> bytes: ...

    # -- streamed responses
    def read_event(self, event: SseEvent) -> StreamEvent: ...

    def response_deltas(self, event: SseEvent) -> list[Delta]: ...

    def rewrite_event(
        self, event: SseEvent | StreamEvent, new_texts: Mapping[Channel, str]
    ) -> SseEvent: ...

    def event_with_text(
        self, template: SseEvent | StreamEvent, channel: Channel, text: str
    ) -> SseEvent: ...

    def usage(self, item: SseEvent | StreamEvent | Mapping[str, object]) -> Usage | None: ...

    def is_terminal(self, event: SseEvent | StreamEvent) -> bool: ...

    def error_events(
        self,
        message: str,
        code: str,
        *,
        first: StreamEvent | None = None,
        last: StreamEvent | None = None,
        kind: ErrorKind = ErrorKind.PERMISSION_DENIED,
    ) -> list[SseEvent]: ...

    # -- non-streamed responses
    def response_texts(self, document: Mapping[str, object]) -> list[TextPart]: ...

    def rewrite_response(
        self, document: Mapping[str, object], replacements: Mapping[Locator, str]
    ) -> bytes: ...


def as_dict(value: object) -> dict[str, object] | None:
    return value if isinstance(value, dict) else None


def as_list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def as_int(value: object) -> int | None:
    # bool is an int in Python but never a token count.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class StreamTexts:
    """Collects a StreamEvent's texts while an adapter walks one payload."""

    __slots__ = ("deltas", "paths", "snapshots")

    def __init__(self) -> None:
        self.deltas: list[Delta] = []
        self.snapshots: list[Delta] = []
        self.paths: dict[Channel, tuple[JsonPath, ...]] = {}

    def delta(self, channel: Channel, text: object, path: JsonPath) -> None:
        if isinstance(text, str):
            # Empty fragments stay addressable (rewrite_event may fill them) but are not
            # reported: the scanner has nothing to read in them.
            if text:
                self.deltas.append(Delta(channel, text))
            self.paths[channel] = (*self.paths.get(channel, ()), path)

    def snapshot(self, channel: Channel, text: object, path: JsonPath) -> None:
        if isinstance(text, str):
            self.snapshots.append(Delta(channel, text))
            self.paths[channel] = (*self.paths.get(channel, ()), path)

    def view(
        self,
        sse: SseEvent,
        payload: object,
        *,
        usage: Usage | None = None,
        terminal: bool = False,
        error: str | None = None,
        mergeable: bool = False,
        streaming: bool = False,
    ) -> StreamEvent:
        return StreamEvent(
            sse=sse,
            payload=payload,
            deltas=tuple(self.deltas),
            snapshots=tuple(self.snapshots),
            usage=usage,
            terminal=terminal,
            error=error,
            paths=self.paths,
            mergeable=mergeable and len(self.deltas) == 1 and len(self.paths) == 1
            and not self.snapshots,
            streaming=streaming or bool(self.deltas),
        )


class JsonAdapter:
    """What the three adapters share: JSON rewriting and the StreamEvent conveniences.

    Subclasses provide read_event, request_texts, response_texts, event_with_text,
    error_events, error_body and _document_usage.
    """

    name: str
    path: str
    repeats_streamed_text = False
    json_channels: frozenset[str] = frozenset()

    def matches(self, method: str, path: str) -> bool:
        return method == "POST" and path == self.path

    def parse_request(self, body: bytes) -> LlmRequest:
        return read_model_and_stream(parse_json_object(body))

    def rewrite_request(
        self, document: Mapping[str, object], replacements: Mapping[Locator, str]
    ) -> bytes:
        """The request body with each located string replaced; valid JSON, the rest as it was.

        Re-serialised compactly even with no replacement: forward the original bytes
        when nothing changed.
        """
        return dump_json(replace_strings(document, replacements))

    def rewrite_response(
        self, document: Mapping[str, object], replacements: Mapping[Locator, str]
    ) -> bytes:
        return dump_json(replace_strings(document, replacements))

    def read_event(self, event: SseEvent) -> StreamEvent:
        raise NotImplementedError

    def view(self, event: SseEvent | StreamEvent) -> StreamEvent:
        return event if isinstance(event, StreamEvent) else self.read_event(event)

    def response_deltas(self, event: SseEvent) -> list[Delta]:
        return list(self.read_event(event).deltas)

    def rewrite_event(
        self, event: SseEvent | StreamEvent, new_texts: Mapping[Channel, str]
    ) -> SseEvent:
        """The event with each channel's text (delta or snapshot) replaced by `new_texts`.

        Channels left out keep their text. KeyError for a channel the event does not carry.
        """
        return rewrite_stream_event(self.view(event), new_texts)

    def usage(self, item: SseEvent | StreamEvent | Mapping[str, object]) -> Usage | None:
        """Token counts in a stream event, or in a non-streamed response document."""
        if isinstance(item, (SseEvent, StreamEvent)):
            return self.view(item).usage
        return self._document_usage(item)

    def is_terminal(self, event: SseEvent | StreamEvent) -> bool:
        return self.view(event).terminal

    def _document_usage(self, document: Mapping[str, object]) -> Usage | None:
        raise NotImplementedError


def template_payload(template: StreamEvent) -> dict[str, object]:
    payload = as_dict(template.payload)
    if payload is None:
        raise ValueError("the template event carries no JSON object to model an event on")
    return payload


def line_ending_of(*views: StreamEvent | None) -> bytes:
    for view in views:
        if view is not None:
            return view.sse.line_ending
    return b"\n"


def dig(node: object, *keys: str | int) -> object:
    """The value at keys/positions below `node`, or None where the shape does not fit."""
    for key in keys:
        if isinstance(node, dict) and isinstance(key, str):
            node = node.get(key)
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            node = node[key]
        else:
            return None
    return node


def add_string(
    out: list[TextPart], node: object, path: JsonPath, kind: str, *, json: bool = False
) -> None:
    """Append a TextPart for `node` at `path` when it is a string."""
    if isinstance(node, str):
        out.append(TextPart(path, node, kind, json))


def strict_index(entry: Mapping[str, object], what: str) -> int:
    """A stream's `index` field: a non-negative integer, or BadResponseBody (fail closed).

    A string, float, boolean or missing index cannot place the text in its channel, and
    guessing one would let a split key slip between two channels.
    """
    number = entry.get("index")
    if type(number) is not int or number < 0:
        raise BadResponseBody(f"{what} 'index' must be a non-negative integer")
    return number


def event_type(payload: Mapping[str, object], event: SseEvent, what: str) -> str:
    """The event's JSON `type`, which must agree with its SSE `event:` name when it has one."""
    kind = payload.get("type")
    if not isinstance(kind, str):
        raise BadResponseBody(f"{what} has no string 'type'")
    if event.event is not None and event.event != kind:
        raise BadResponseBody(f"{what} type does not match its SSE event name")
    return kind


def dump_json_text(document: object) -> str:
    return dump_json(document).decode("utf-8")
