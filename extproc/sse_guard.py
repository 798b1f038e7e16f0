"""The response token stream, scanned in flight: chunk -> events -> deltas -> scanner -> events.

Sans-I/O: `feed(chunk)` returns the bytes that may go to the client now,
`finish()` the rest at end of stream. Each channel (a choice's content, a
tool call's arguments, a content block) has its own streaming scanner, so a
secret split across twenty events is seen whole, and text that could still
become part of a match stays here until it is safe.

Events are re-emitted in order with the text the scanner released for them;
text held back is emitted later in a continuation event of the same shape
(`event_with_text`). Before an event that is not a text delta (a finish
chunk, `content_block_stop`, a `.done` snapshot, the terminator) every
channel is flushed, so the client never sees text after its channel ended.
Keep-alives (comments, Anthropic `ping`) pass at once and do not flush, so a
match split around a ping is still found.

Every string of an event is scanned, not just the adapter's deltas: the sweep
(`extproc.llm.strings`) finds the rest, each on a channel named by its JSON path
in a delta event, whole in a boundary event; keys once per stream. Channels whose
text is a JSON document are read decoded (`JsonTextScan`). `logprobs` go out only
beside text released unchanged with nothing held, and only when consistent with it;
otherwise they are null, so held or rewritten text has one way out.

On a `block` finding the client gets the text before the match, then the
provider's in-band error event and terminator; nothing more is read out. A
malformed event, invalid JSON or invalid UTF-8 ends the stream the same way
when the plan blocks or redacts: no unscanned byte passes.

A plan whose every action is `audit` (and `mode: audit`, which makes it so)
only observes: each chunk goes out unchanged at once, byte for byte, and is
scanned on the side; a stream it cannot read stops being scanned, and the
reason is recorded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Protocol

from extproc.audit import FindingRecord, match_hash
from extproc.document_guard import all_clean
from extproc.json_scan import JsonTextScan
from extproc.llm.base import (
    BadResponseBody,
    Channel,
    ErrorKind,
    JsonPath,
    Provider,
    StreamEvent,
    Usage,
    dig,
    dump_json_text,
    replace_values,
    rewrite_stream_event,
)
from extproc.llm.response_facts import ResponseFacts
from extproc.llm.strings import Found, StructureError, check_structural, shown_key, sweep
from extproc.llm_tools import TOOLS_SCANNER, forbidden_call
from extproc.scan_plan import ScanPlan
from extproc.scanner import Finding
from extproc.sse import SseError, SseEvent, SseParser, serialize
from mesh.mcp_policy import ToolRules
from mesh.verdicts import Action

# An upstream that invents thousands of choices or blocks would otherwise cost a
# scanner each; no real response comes near this.
MAX_CHANNELS = 256


# A swept field's channel: ("field", event type, top-level positions, normalised path).
FIELD = "field"
_POSITION_KEYS = ("index", "output_index", "content_index", "summary_index")


class TextScan(Protocol):
    """What a channel needs of its scanner: `StreamScanner`, or `JsonTextScan` for JSON."""

    @property
    def held_bytes(self) -> int: ...

    def feed(self, chunk: bytes) -> tuple[bytes, list[Finding]]: ...

    def finish(self) -> tuple[bytes, list[Finding]]: ...

    def text_of(self, finding: Finding) -> str: ...


@dataclass
class _Channel:
    scanner: TextScan
    template: StreamEvent  # the last event that carried text for this channel
    path: JsonPath | None = None  # a swept field's place in `template`


@dataclass
class SseGuard:
    provider: Provider
    plan: ScanPlan
    max_event_bytes: int = 1 << 20
    findings: list[FindingRecord] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    facts: ResponseFacts = field(default_factory=ResponseFacts)  # model, finish reasons
    blocked_by: FindingRecord | None = None
    failure: str | None = None  # why the stream was ended by Weir, if it was
    events: int = 0
    saw_terminal: bool = False  # the provider's end-of-stream event was read (and released)
    # The workload's `tools` (mesh.mcp_policy): a streamed call of another tool is blocked
    # at the event that names it, before any byte of its arguments.
    tools: ToolRules | None = None

    def __post_init__(self) -> None:
        self._parser = SseParser(max_event_bytes=self.max_event_bytes)
        self._channels: dict[Channel, _Channel] = {}
        # Everything released per channel, kept only for an API that repeats it later:
        # otherwise a long answer would cost memory for nothing.
        self._released: dict[Channel, list[str]] = {}
        self._keep_released = self.provider.repeats_streamed_text
        self._first: StreamEvent | None = None
        self._last: StreamEvent | None = None
        self._ended = False  # Weir ended the stream (block or failure): swallow the rest
        self._observe_only = self.plan.observe_only
        actions = self.plan.actions
        self._hidden = frozenset(
            k for k, v in actions.items() if v in (Action.BLOCK, Action.REDACT)
        )
        self._blocking = frozenset(k for k, v in actions.items() if v == Action.BLOCK)
        # Memos of what one stream repeats in every event: keys scanned clean, structural
        # values whose shape was checked.
        self._clean_keys: set[str] = set()
        self._structural_ok: set[tuple[str, object]] = set()

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def terminated(self) -> bool:
        """Weir ended the client's stream (block, or a stream it could not read)."""
        return self._ended and not self._observe_only

    @property
    def held_bytes(self) -> int:
        return self._parser.held_bytes + sum(c.scanner.held_bytes for c in self._channels.values())

    # --- public ------------------------------------------------------------------

    def feed(self, chunk: bytes) -> bytes:
        if self._observe_only:
            if not self._ended:
                self._read(chunk, final=False)
            return chunk
        return b"" if self._ended else self._read(chunk, final=False)

    def finish(self) -> bytes:
        if self._ended:
            return b""
        out = self._read(b"", final=True)
        return b"" if self._observe_only else out

    def terminate(self, reason: str) -> bytes:
        """End the stream now, in band: the provider's error event and terminator.

        For a stream that must stop before the upstream ends it (Weir's drain
        deadline). Text still held is not released: it is unscanned or could be
        the start of a match. b"" if the stream already ended.
        """
        if self._ended:
            return b""
        self.failure = reason
        self._ended = True
        # Observing only, the client got the upstream's raw bytes, perhaps half an
        # event: close that event so the error event stands on its own.
        prefix = b"\n\n" if self._observe_only and self._parser.held_bytes else b""
        return prefix + self._error_events()

    def _read(self, chunk: bytes, *, final: bool) -> bytes:
        try:
            events = self._parser.finish() if final else self._parser.feed(chunk)
        except SseError as exc:
            return self._fail(f"malformed event stream: {exc}")
        out = self._process(events)
        if final and not self._ended:
            out += self._flush_all()
        return out

    # --- the pipeline --------------------------------------------------------------

    def _process(self, events: list[SseEvent]) -> bytes:
        out: list[bytes] = []
        run: list[StreamEvent] = []  # consecutive mergeable text events, not yet scanned
        for event in events:
            self.events += 1
            try:
                view = self.provider.read_event(event)
                fields, logprobs = self._sweep(view)
            except (BadResponseBody, StructureError) as exc:
                if run:
                    out.append(self._merged(run))
                if not self._ended:
                    out.append(self._fail(f"unreadable stream event: {exc}"))
                break
            if self._ended:  # a key of the event matched
                if run:
                    out.append(self._merged(run))
                out.append(self._error_events())
                break
            forbidden = None if self.tools is None else forbidden_call(view.payload, self.tools)
            if forbidden is not None:
                if run:
                    out.append(self._merged(run))
                if not self._ended:
                    self.blocked_by = FindingRecord(
                        "response", "tool_calls", TOOLS_SCANNER, forbidden, Action.BLOCK,
                        0, len(forbidden), match_hash(forbidden),
                    )
                    self._ended = True
                    out.append(self._error_events())
                break
            if self._first is None:
                self._first = view
            self._last = view
            if view.usage is not None:
                self.usage = self.usage.merged(view.usage)
            if not view.mergeable or view is self._first:
                # A plain token chunk says nothing new of the model or why it stopped:
                # the first event and the boundary events (finish, usage, stop) do.
                self.facts.observe(view.payload)
            if view.terminal:
                self.saw_terminal = True
            if view.mergeable and not fields and not logprobs:
                run.append(view)
                continue
            if run:
                out.append(self._merged(run))
                run = []
                if self._ended:
                    break
            if view.deltas or (view.streaming and (fields or logprobs)):
                out.append(self._deltas(view, fields, logprobs))
            elif not fields and not logprobs and _is_keepalive(view):
                out.append(serialize(event))
            else:
                out.append(self._flush_all())
                if not self._ended:
                    out.append(self._boundary(view, fields, logprobs))
            if self._ended:
                break
        if run and not self._ended:
            out.append(self._merged(run))
        return b"".join(out)

    def _merged(self, run: list[StreamEvent]) -> bytes:
        """A run of text-only events: one scanner call and at most one event per channel.

        Each channel's fragments are scanned as one text (the scanner is split-invariant)
        and what it releases goes out in the channel's last event of the run; the others
        are dropped, and so is that one when everything is still held. Fewer events, JSON
        rewrites and scanner calls: the coalescing that keeps a token stream cheap.
        """
        by_channel: dict[Channel, list[StreamEvent]] = {}
        for view in run:
            by_channel.setdefault(view.deltas[0].channel, []).append(view)
        out: list[bytes] = []
        for name, views in by_channel.items():
            last = views[-1]
            channel = self._channel(name, last)
            if channel is None:
                out.append(self._fail("too many text channels in one response"))
                break
            channel.template = last
            text = "".join(view.deltas[0].text for view in views)
            released = self._scan(name, channel.scanner, _utf8(text), final=False)
            if released:
                out.append(self._rewrite(last, {name: released}))
            if self._ended:
                out.append(self._error_events())
                break
        return b"".join(out)

    def _sweep(self, view: StreamEvent) -> tuple[list[Found], list[JsonPath]]:
        """The event's strings the adapter does not place, and its logprobs subtrees.

        Object keys are scanned here, whole: a key cannot be held back or rewritten in
        flight, so a key that matches a redact or block rule ends the stream.
        """
        if view.payload is None:
            return [], []
        if view.plain and isinstance(view.payload, dict):
            check_structural(view.payload, self._structural_ok)
            return [], []
        skip = {path for paths in view.paths.values() for path in paths}
        swept = sweep(view.payload, skip, clean_keys=self._clean_keys,
                      structural_ok=self._structural_ok)
        fields = [found for found in swept.strings if not found.key]
        keys = {found.text for found in swept.strings if found.key}
        if keys and all_clean(self.plan, keys):
            self._clean_keys.update(keys)
            return fields, swept.logprobs
        for found in swept.strings:
            if not found.key:
                continue
            released = self._scan_whole(("#key", *found.channel_path[1:]), found.text)
            if self._ended:
                return [], []
            if released != found.text:
                self.failure = "an object key of a stream event matched a rule"
                self._ended = True
                return [], []
            self._clean_keys.add(found.text)
        return fields, swept.logprobs

    def _deltas(self, view: StreamEvent, fields: list[Found], logprobs: list[JsonPath]) -> bytes:
        """An event that carries growing texts: each scanned on its channel, held as needed.

        Its logprobs go out only when every text of the event goes out exactly as it came
        and nothing of those channels is held: otherwise they would release what is held.
        """
        new_texts: dict[Channel, str] = {}
        values: dict[JsonPath, object] = {}
        intact = True
        for delta in view.deltas:
            channel = self._channel(delta.channel, view)
            if channel is None:
                return self._fail("too many text channels in one response")
            channel.template = view
            released = self._scan(delta.channel, channel.scanner, _utf8(delta.text), final=False)
            new_texts[delta.channel] = new_texts.get(delta.channel, "") + released
            if self._ended:
                # Block: what was released before the match still goes out, then the error.
                return self._ending(view, new_texts, values, fields, logprobs)
            intact = intact and released == delta.text and channel.scanner.held_bytes == 0
        for found in fields:
            name = self._field_channel(view, found)
            channel = self._channel(name, view)
            if channel is None:
                return self._fail("too many text channels in one response")
            channel.template, channel.path = view, found.path
            released = self._scan(name, channel.scanner, _utf8(found.text), final=False)
            values[found.path] = released
            if self._ended:
                return self._ending(view, new_texts, values, fields, logprobs)
            intact = intact and released == found.text and channel.scanner.held_bytes == 0
        for path in logprobs:
            if not intact or not self._logprobs_clean(view, path):
                values[path] = None
        return self._rewrite(view, new_texts, values)

    def _ending(
        self,
        view: StreamEvent,
        new_texts: dict[Channel, str],
        values: dict[JsonPath, object],
        fields: list[Found],
        logprobs: list[JsonPath],
    ) -> bytes:
        """On a block inside an event: the event with only released text, then the error."""
        texts = {name: new_texts.get(name, "") for name in view.paths}
        ended = {found.path: values.get(found.path, "") for found in fields}
        ended.update((path, None) for path in logprobs)
        released = any(texts.values()) or any(v for v in ended.values() if isinstance(v, str))
        prefix = self._rewrite(view, texts, ended) if released else b""
        return prefix + self._error_events()

    def _boundary(self, view: StreamEvent, fields: list[Found], logprobs: list[JsonPath]) -> bytes:
        """An event that carries whole texts: snapshots and any other string, scanned whole."""
        if not view.snapshots and not fields and not logprobs:
            return serialize(view.sse)
        new_texts: dict[Channel, str] = {}
        intact = True
        for snapshot in view.snapshots:
            if snapshot.channel in self._released:
                new_texts[snapshot.channel] = "".join(self._released[snapshot.channel])
            else:
                # A whole text we never saw as deltas (a `.done` without deltas).
                new_texts[snapshot.channel] = self._scan_whole(snapshot.channel, snapshot.text)
                if self._ended:
                    return self._error_events()
            intact = intact and new_texts[snapshot.channel] == snapshot.text
        values: dict[JsonPath, object] = {}
        for found in fields:
            released = self._scan_whole(self._field_channel(view, found), found.text)
            if self._ended:
                return self._error_events()
            if released != found.text:
                values[found.path] = released
                intact = False
        for path in logprobs:
            if not intact or not self._logprobs_clean(view, path):
                values[path] = None
        return self._rewrite(view, new_texts, values)

    def _field_channel(self, view: StreamEvent, found: Found) -> Channel:
        payload = view.payload if isinstance(view.payload, dict) else {}
        kind = payload.get("type")
        places = "".join(f"{key}={payload[key]};" for key in _POSITION_KEYS if key in payload)
        return (FIELD, kind if isinstance(kind, str) else "", places, *found.channel_path)

    def _logprobs_clean(self, view: StreamEvent, path: JsonPath) -> bool:
        """Logprobs that say nothing their event's released text does not already say.

        Their tokens must join to exactly the text beside them, each ``bytes`` list must be
        its token's UTF-8, and no string in them (alternatives included) may match a rule.
        """
        value = dig(view.payload, *path)
        sibling = _logprob_siblings(view.payload, path)
        if sibling is None:
            return False
        for entries, text in sibling(value):
            if not isinstance(entries, list):
                return False
            tokens = [dig(entry, "token") for entry in entries]
            if not all(isinstance(t, str) for t in tokens) or "".join(tokens) != text:  # type: ignore[arg-type]
                return False
        if not _bytes_match(value):
            return False
        scan = JsonTextScan(self.plan.stream(), self._hidden, self._blocking)
        source = _utf8(json.dumps(value))
        return not scan.feed(source)[1] and not scan.finish()[1]

    def _scan_whole(self, name: Channel, text: str) -> str:
        scanner = self._new_scanner(name, json_text=text[:1] in ("{", "["))
        released = self._scan(name, scanner, _utf8(text), final=False, keep=False)
        if not self._ended:
            released += self._scan(name, scanner, b"", final=True, keep=False)
        return released

    def _new_scanner(self, name: Channel, *, json_text: bool = False) -> TextScan:
        if json_text or name[0] in self.provider.json_channels:
            return JsonTextScan(self.plan.stream(), self._hidden, self._blocking)
        return self.plan.stream()

    def _field_event(self, template: StreamEvent, path: JsonPath, text: str) -> SseEvent:
        """A copy of `template` carrying only `text` at `path` (a swept field's tail)."""
        swept = sweep(template.payload, ())
        values: dict[JsonPath, object] = {found.path: "" for found in swept.strings
                                          if not found.key}
        values.update((p, None) for p in swept.logprobs)
        if isinstance(template.payload, dict) and "usage" in template.payload:
            values[("usage",)] = None
        values[path] = text
        payload = replace_values(template.payload, values)
        return template.sse.with_data(dump_json_text(payload))

    def _flush_all(self) -> bytes:
        out: list[bytes] = []
        for name, channel in list(self._channels.items()):
            del self._channels[name]
            tail = self._scan(name, channel.scanner, b"", final=True)
            if tail:
                if channel.path is not None:
                    event = self._field_event(channel.template, channel.path, tail)
                else:
                    event = self.provider.event_with_text(channel.template, name, tail)
                out.append(serialize(event))
            if self._ended:
                out.append(self._error_events())
                break
        return b"".join(out)

    def _channel(self, name: Channel, view: StreamEvent) -> _Channel | None:
        channel = self._channels.get(name)
        if channel is None:
            if len(self._channels) >= MAX_CHANNELS:
                return None
            channel = _Channel(self._new_scanner(name), view)
            self._channels[name] = channel
        return channel

    def _scan(
        self, name: Channel, scanner: TextScan, data: bytes, *, final: bool, keep: bool = True
    ) -> str:
        """Feed one channel's scanner; record findings; return the released text."""
        released, found = scanner.finish() if final else scanner.feed(data)
        for finding in found:
            record = FindingRecord(
                "response", "/".join(shown_key(part) for part in name), finding.scanner,
                finding.rule,
                self.plan.action_for(finding), finding.start, finding.end,
                match_hash(scanner.text_of(finding)),
            )
            self.findings.append(record)
            if record.action == Action.BLOCK and self.blocked_by is None:
                self.blocked_by = record
                self._ended = True
        text = released.decode("utf-8", "surrogatepass")
        if self._keep_released and keep:
            self._released.setdefault(name, []).append(text)
        return text

    def _rewrite(
        self,
        view: StreamEvent,
        new_texts: dict[Channel, str],
        values: dict[JsonPath, object] | None = None,
    ) -> bytes:
        if not values:
            return serialize(self.provider.rewrite_event(view, new_texts))
        changed = {path: v for path, v in values.items() if v != dig(view.payload, *path)}
        return serialize(rewrite_stream_event(view, new_texts, changed))

    def _error_events(self) -> bytes:
        if self.blocked_by is None:
            return stream_error_events(
                self.provider, str(self.failure), first=self._first, last=self._last
            )
        rule = self.blocked_by
        if rule.scanner == TOOLS_SCANNER:
            events = self.provider.error_events(
                f"weir: tool call blocked by policy: tool '{rule.rule}' is not in the "
                "workload's tools",
                "weir_tool_blocked",
                first=self._first, last=self._last, kind=ErrorKind.PERMISSION_DENIED,
            )
            return b"".join(serialize(e) for e in events)
        events = self.provider.error_events(
            f"weir: response blocked by policy: rule '{rule.rule}' ({rule.scanner}) "
            "matched in the model output",
            "weir_response_blocked",
            first=self._first, last=self._last, kind=ErrorKind.PERMISSION_DENIED,
        )
        return b"".join(serialize(e) for e in events)

    def _fail(self, reason: str) -> bytes:
        """A stream Weir cannot read: end it, or (observing only) stop reading it."""
        self.failure = reason
        self._ended = True
        return b"" if self._observe_only else self._error_events()


def stream_error_events(
    provider: Provider,
    reason: str,
    *,
    first: StreamEvent | None = None,
    last: StreamEvent | None = None,
) -> bytes:
    """The provider's in-band error event and terminator for a stream Weir ends itself."""
    events = provider.error_events(
        f"weir: response stream ended: {reason}", "weir_stream_error",
        first=first, last=last, kind=ErrorKind.UNAVAILABLE,
    )
    return b"".join(serialize(e) for e in events)


def _utf8(text: str) -> bytes:
    # JSON may carry a lone surrogate escape ("\\ud800"); the scanner reads it as U+FFFD
    # rather than the encoder failing the whole exchange.
    return text.encode("utf-8", "surrogatepass")


def _logprob_siblings(payload: object, path: JsonPath):  # type: ignore[no-untyped-def]
    """How a logprobs subtree at `path` pairs its token lists with the text beside them.

    Chat: ``choices[i].logprobs.{content,refusal}`` list the tokens of the choice's
    ``delta.{content,refusal}``; responses: an event's ``logprobs`` list those of its
    ``delta`` (or of its ``text``, on ``.done``). None for a place Weir does not know.
    """
    if len(path) == 3 and path[0] == "choices" and path[2] == "logprobs":
        delta = dig(payload, "choices", path[1], "delta")

        def chat(value: object):  # type: ignore[no-untyped-def]
            if not isinstance(value, dict):
                return [(None, "")]
            pairs = []
            for key, entries in value.items():
                if key not in ("content", "refusal"):
                    return [(None, "")]
                if entries is None:
                    continue
                text = dig(delta, key)
                pairs.append((entries, text if isinstance(text, str) else ""))
            return pairs

        return chat
    if path == ("logprobs",) and isinstance(payload, dict):
        text = payload.get("delta", payload.get("text"))
        return lambda value: [(value, text if isinstance(text, str) else "")]
    return None


def _bytes_match(value: object) -> bool:
    """Every ``bytes`` list under `value` is the UTF-8 of the ``token`` beside it."""
    if isinstance(value, dict):
        raw = value.get("bytes")
        if raw is not None:
            token = value.get("token")
            if not isinstance(token, str) or raw != list(_utf8(token)):
                return False
        return all(_bytes_match(child) for child in value.values())
    if isinstance(value, list):
        return all(_bytes_match(child) for child in value)
    return True


def _is_keepalive(view: StreamEvent) -> bool:
    if view.terminal or view.error is not None or view.snapshots or view.usage is not None:
        return False
    if view.payload is None:
        return view.sse.data is None  # comments and empty blocks; `data: [DONE]` has data
    return isinstance(view.payload, dict) and view.payload.get("type") == "ping"
