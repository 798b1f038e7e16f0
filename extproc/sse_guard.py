"""The response token stream, scanned in flight: chunk -> events -> channels -> events.

Sans-I/O: `feed(chunk)` returns the bytes that may go to the client now,
`finish()` the rest at end of stream. Each channel (a choice's content, a
tool call's arguments, a content block) has its own streaming scanner, so a
secret split across twenty events is seen whole, and text that could still
become part of a match stays here until it is safe.

**Pass-through by default.** A text-only event is held back *whole*, as its
original bytes, while its channel's scanner still holds any of its text, and goes
out byte for byte once the scanner has released all of it unchanged. The scanner's
`advance` takes the bytes held and answers with a release point in them, so a clean
token costs no text round trip and no JSON write. Only an event whose text is
rewritten is rebuilt: after a redaction, everything released since the channel's
last event out goes, redacted, in the last event wholly released (the others of
that span are dropped; one partly in it keeps the rest). An event that carries more
than text (a role, a tool call's name, logprobs, usage) keeps its place and shape
with the released part of its own text; its held rest follows in a continuation
event of the same shape (`event_with_text`). Before an event that is not a text
delta (a finish chunk, `content_block_stop`, a `.done` snapshot, the terminator)
every channel is flushed, so the client never sees text after its channel ended.
Keep-alives (comments, Anthropic `ping`) pass at once and do not flush, so a
match split around a ping is still found.

**The fast lane** (`extproc.sse_fast_lane`, on unless ``fast_lane=False``): once a
channel's text event has been read in full here, its byte shape is learned, and a
compiled pass frames later body messages and reads the text of every event of a
known shape without a Python object per event; each run of them is scanned in one
call and released as one slice. What it does not classify takes the general path
below, event by event; the two are byte-equal (a property test holds them so).

Every string of an event is scanned, not just the adapter's deltas: the sweep
(`extproc.llm.strings`) finds the rest, each on a channel named by its JSON path
in a delta event, whole in a boundary event; keys once per stream. Channels whose
text is a JSON document are read decoded (`JsonTextScan`). `logprobs` go out only
beside text released unchanged with nothing held, and only when consistent with it;
otherwise they are null, so held or rewritten text has one way out.

On a `block` finding the client gets the text before the match (the events wholly
before it as they came, the one where it starts rebuilt with only its text before the
match), then the provider's in-band error event and terminator; nothing more is read
out. A malformed event, invalid JSON or invalid UTF-8 ends the stream the same way
when the plan blocks or redacts: no unscanned byte passes.

A plan whose every action is `audit` (and `mode: audit`, which makes it so)
only observes: each chunk goes out unchanged at once, byte for byte, and is
scanned on the side; a stream it cannot read stops being scanned, and the
reason is recorded.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

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
from extproc.scanner import Finding, Release
from extproc.sse import SseError, SseEvent, SseParser, serialize
from extproc.sse_fast_lane import (
    STOP_FULL,
    ShapeTable,
    frame,
    shape_candidate,
)
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

    def advance(self, data: bytes, final: bool = False) -> Release: ...

    def text_of(self, finding: Finding) -> str: ...


@dataclass(slots=True)
class _Slot:
    """An event, or what is left of one, whose text its channel's scanner still holds.

    ``text`` is the channel input the slot carries (UTF-8), from input offset
    ``origin`` to ``end``. While ``whole``, the event may still go out as its own
    ``event`` bytes: none of its text went out in another shape and none was changed.
    """

    event: bytes | None  # the original event bytes (None for what is left of a rebuilt one)
    view: StreamEvent | None  # its reading; the fast lane leaves it for a rebuild to parse
    text: bytes
    origin: int
    end: int
    whole: bool
    # A text-only event rebuilt with its own shape; otherwise a continuation event of
    # the channel (`event_with_text`, or a swept field's copy) carries the text.
    mergeable: bool = True
    # A run of fast-lane events in one slot: where each event and each text ends,
    # relative to `event` and `origin`. None for one event.
    event_ends: np.ndarray | None = None
    text_ends: np.ndarray | None = None

    def singles(self) -> list[_Slot]:
        """A run's events as slots of their own (a rebuild needs them apart)."""
        if self.event_ends is None or self.text_ends is None or self.event is None:
            return [self]
        out = []
        event_at, text_at = 0, 0
        for event_end, text_end in zip(self.event_ends.tolist(), self.text_ends.tolist(),
                                       strict=True):
            out.append(_Slot(self.event[event_at:event_end], None,
                             self.text[text_at:text_end], self.origin + text_at,
                             self.origin + text_end, self.whole))
            event_at, text_at = event_end, text_end
        return out


# The fast lane's output arrays: starts, ends, kinds, text starts, text ends, texts.
_Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass(slots=True)
class _Batch:
    """Consecutive fast-lane events of one shape, as one item of the pipeline."""

    channel: Channel
    slot: _Slot
    count: int
    last: bytes  # the last event's bytes: the stream's latest event, for error events


@dataclass(slots=True)
class _Channel:
    scanner: TextScan
    template: StreamEvent | None  # the last event that carried text for this channel
    path: JsonPath | None = None  # a swept field's place in `template`
    fed: int = 0  # input bytes given to the scanner
    sent: int = 0  # input offset up to which the client has this channel's output
    released: int = 0  # the scanner's release point (input offset)
    # The output for [sent, released) when it is not that input (a redaction); else None.
    changed: list[bytes] | None = None
    slots: deque[_Slot] = field(default_factory=deque)
    template_event: bytes | None = None  # a later template, not parsed yet (fast lane)

    def input(self, start: int, end: int) -> bytes:
        """The channel's input bytes [start, end), all still held in slots."""
        parts = []
        for slot in self.slots:
            if slot.end <= start:
                continue
            if slot.origin >= end:
                break
            parts.append(slot.text[max(start - slot.origin, 0) : end - slot.origin])
        return b"".join(parts)


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
    # The compiled fast lane for the common token events (`extproc.sse_fast_lane`); off,
    # every event takes the general path, which defines what is correct.
    fast_lane: bool = True

    def __post_init__(self) -> None:
        self._parser = SseParser(max_event_bytes=self.max_event_bytes)
        self._shapes = ShapeTable()
        self._shape_tries: dict[Channel, int] = {}
        self._carry = b""  # the fast lane's incomplete event
        self._fast = self.fast_lane
        self._last_event: bytes | None = None  # the latest event when the fast lane read it
        self._frame_arrays: (
            tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None
        ) = None
        self._text_buffer = np.empty(0, dtype=np.uint8)
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
        """Bytes read and not yet released: a partial event, held text, held events."""
        held = self._parser.held_bytes + len(self._carry)
        for channel in self._channels.values():
            # What the scanner holds is its input past its release point (no re-encode).
            held += channel.fed - channel.released
            for slot in channel.slots:
                if slot.whole and slot.event:
                    held += len(slot.event)
        return held

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
        held = self._parser.held_bytes or self._carry
        prefix = b"\n\n" if self._observe_only and held else b""
        return prefix + self._error_events()

    def _read(self, chunk: bytes, *, final: bool) -> bytes:
        events: Sequence[SseEvent | _Batch]
        try:
            if self._fast and len(self._shapes):
                events = self._fast_items(chunk, final)
            else:
                events = self._parser.finish() if final else self._parser.feed(chunk)
        except SseError as exc:
            return self._fail(f"malformed event stream: {exc}")
        if len(events) == 1 and type(events[0]) is _Batch and not final:
            out = self._batch(events[0])  # the common chunk: one run of token events
        else:
            out = self._process(events)
        if final and not self._ended:
            out += self._flush_all()
        return out

    # --- the pipeline --------------------------------------------------------------

    def _fast_items(self, chunk: bytes, final: bool) -> list[SseEvent | _Batch]:
        """The chunk's events through the fast lane: runs of known shapes, and the rest.

        The compiled pass frames every complete LF event; runs of consecutive events of
        one learned shape become one `_Batch`, any other event is read by the general
        parser, one by one. A CR or an oversized event hands the stream to the general
        parser for good.
        """
        parser = self._parser
        buf = chunk
        if self._carry or parser.held_bytes:
            buf = parser.take_held() + self._carry + chunk
            self._carry = b""
        data = np.frombuffer(buf, dtype=np.uint8)
        arrays = self._arrays(min(len(buf) // 2 + 1, 4096), len(buf))
        items: list[SseEvent | _Batch] = []
        position = 0
        while True:
            count, used, stop = frame(
                data, position, self.max_event_bytes, self._shapes.bytes, self._shapes.pieces,
                self._shapes.rows, *arrays,
            )  # fmt: skip
            self._collect(buf, count, *arrays, items)
            position += used
            if stop != STOP_FULL:
                break
        rest = buf[position:]
        if stop or final:
            # Stopped (CR, oversized) or at the end: the general parser reads the rest.
            self._fast = self._fast and not stop
            items.extend(parser.feed(rest) if rest else ())
            if final:
                items.extend(parser.finish())
        else:
            self._carry = rest
        return items

    def _collect(
        self,
        buf: bytes,
        count: int,
        starts: np.ndarray,
        ends: np.ndarray,
        kinds: np.ndarray,
        text_starts: np.ndarray,
        text_ends: np.ndarray,
        out: np.ndarray,
        items: list[SseEvent | _Batch],
        parsed: list[SseEvent] | None = None,
    ) -> None:
        """Runs of one shape as `_Batch` items; any other event read by the general parser.

        ``parsed``: the events were parsed already (`_reframed`); keep those.
        """
        if not count:
            return
        if count == 1 and parsed is None and kinds[0] >= 0:
            # One token event (Envoy often hands them over one by one): no slicing.
            at, end = int(starts[0]), int(ends[0])
            event = buf if at == 0 and end == len(buf) else buf[at:end]
            self._parser.skip(end - at)
            text = out[int(text_starts[0]) : int(text_ends[0])].tobytes()
            slot = _Slot(event, None, text, 0, len(text), True)
            items.append(_Batch(self._shapes.channels[int(kinds[0])], slot, 1, event))
            return
        kind = kinds[:count]
        if count == 1 or (kind[0] >= 0 and kind[0] == kind[count - 1] and kind.min() == kind[0]
                          and kind.max() == kind[0]):
            bounds = [0, count]
        else:
            # A run ends where the shape changes and around every unclassified event.
            cuts = np.flatnonzero((kind[1:] != kind[:-1]) | (kind[1:] < 0)) + 1
            bounds = [0, *cuts.tolist(), count]
        parser = self._parser
        for first, stop in itertools.pairwise(bounds):
            shape = int(kind[first])
            if shape < 0:
                if parsed is not None:
                    items.append(parsed[first])
                else:
                    items.extend(parser.feed(buf[int(starts[first]) : int(ends[first])]))
                continue
            event_at, event_end = int(starts[first]), int(ends[stop - 1])
            text_at, text_end = int(text_starts[first]), int(text_ends[stop - 1])
            if parsed is None:
                parser.skip(event_end - event_at)
            event = buf[event_at:event_end]
            text = out[text_at:text_end].tobytes()
            if stop - first == 1:
                slot = _Slot(event, None, text, 0, len(text), True)
                last = event
            else:
                slot = _Slot(event, None, text, 0, len(text), True,
                             event_ends=ends[first:stop] - event_at,
                             text_ends=text_ends[first:stop] - text_at)
                last = buf[int(starts[stop - 1]) : event_end]
            items.append(_Batch(self._shapes.channels[shape], slot, stop - first, last))

    def _reframed(self, rest: list[SseEvent | _Batch]) -> list[SseEvent | _Batch]:
        """Events of this chunk not read yet, with the shape just learned: as runs again.

        They went through the general parser already (so its offsets count them); the
        pass only classifies them, and every event it does not take stays as parsed.
        """
        if not all(type(item) is SseEvent for item in rest):
            return rest
        events: list[SseEvent] = rest  # type: ignore[assignment]
        buf = b"".join(event.raw for event in events)
        arrays = self._arrays(len(events), len(buf))
        count, _, _ = frame(np.frombuffer(buf, dtype=np.uint8), 0, self.max_event_bytes,
                            self._shapes.bytes, self._shapes.pieces, self._shapes.rows, *arrays)
        starts, ends = arrays[0], arrays[1]
        offset = 0
        for k, event in enumerate(events[:count]):
            if int(starts[k]) != offset or int(ends[k]) != offset + len(event.raw):
                return rest  # framed otherwise (CR, ...): leave them to the general path
            offset += len(event.raw)
        items: list[SseEvent | _Batch] = []
        self._collect(buf, count, *arrays, items, parsed=events)
        return items + rest[count:]

    def _arrays(self, events: int, size: int) -> _Arrays:
        """The pass's output arrays (reused): room for `events` events, `size` text bytes."""
        if self._frame_arrays is None or len(self._frame_arrays[0]) < events:
            cap = max(events, 64)
            a, b, c, d, e = (np.empty(cap, dtype=np.int64) for _ in range(5))
            self._frame_arrays = (a, b, c, d, e)
        if len(self._text_buffer) < size:
            self._text_buffer = np.empty(max(size, 4096), dtype=np.uint8)
        return (*self._frame_arrays, self._text_buffer)

    def _learn(self, view: StreamEvent) -> bool:
        """Learn the shape of a text-only event the general path read (`sse_fast_lane`).

        Kept only when a copy with another text (and sequence number) reads the same
        way: a text-only event of the same channel, with nothing else to sweep.
        """
        name = view.deltas[0].channel
        tries = self._shape_tries.get(name, 0)
        if tries >= 3:
            return False
        self._shape_tries[name] = tries + 1
        found = shape_candidate(view.sse.raw, view.deltas[0].text, name)
        if found is None:
            return False
        shape, probe, probe_text = found
        try:
            parser = SseParser(max_event_bytes=self.max_event_bytes)
            events = parser.feed(probe) + parser.finish()
            if len(events) != 1:
                return False
            copy = self.provider.read_event(events[0])
            same = (
                copy.mergeable and copy.plain == view.plain and copy.paths == view.paths
                and len(copy.deltas) == 1 and copy.deltas[0].channel == name
                and copy.deltas[0].text == probe_text and copy.usage is None
                and view.usage is None and not copy.terminal and copy.error is None
                and not copy.snapshots
            )
            if not same or self._sweep(copy) != ([], []) or self._ended:
                return False
        except (SseError, BadResponseBody, StructureError):
            return False
        if self.tools is not None and forbidden_call(copy.payload, self.tools) is not None:
            return False
        self._shape_tries[name] = 3
        self._shapes.add(shape)
        return True

    def _process(self, events: Sequence[SseEvent | _Batch]) -> bytes:
        out: list[bytes] = []
        # Consecutive mergeable text events (and fast-lane runs), not yet scanned.
        run: list[StreamEvent | _Batch] = []
        items = list(events)
        at = 0
        while at < len(items):
            event = items[at]
            at += 1
            if type(event) is _Batch:
                self.events += event.count
                self._last_event = event.last
                run.append(event)
                continue
            assert isinstance(event, SseEvent)
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
                    self.blocked_by = tool_finding(forbidden)
                    self._ended = True
                    out.append(self._error_events())
                break
            if self._first is None:
                self._first = view
            self._last = view
            self._last_event = None
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
                learn = self._fast and self._shape_tries.get(view.deltas[0].channel, 0) < 3
                if learn and self._learn(view) and at < len(items):
                    items[at:] = self._reframed(items[at:])
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

    def _batch(self, batch: _Batch) -> bytes:
        """`_process` of a chunk that is one fast-lane run (most chunks): `_merged` inline."""
        self.events += batch.count
        self._last_event = batch.last
        name = batch.channel
        channel = self._channels.get(name)
        if channel is None:
            return self._merged([batch])
        channel.template_event = batch.last
        slot = batch.slot
        slot.origin, slot.end = channel.fed, channel.fed + len(slot.text)
        channel.slots.append(slot)
        self._feed(name, channel, slot.text)
        drained = self._drain(name, channel, partial=self._ended)
        out = [self._sent(name, channel, s, piece) for s, piece in drained]
        if self._ended:
            out.append(self._error_events())
        return b"".join(out)

    def _merged(self, run: list[StreamEvent | _Batch]) -> bytes:
        """A run of text-only events: held whole, and sent as they came once released.

        Each channel's fragments of the run are scanned as one text (the scanner is
        split-invariant), in one call; each event is kept, as its own bytes, until the
        scanner has released all of its text, and then goes out unchanged unless a
        redaction touched the text it carries (see `_drain`).
        """
        by_channel: dict[Channel, list[StreamEvent | _Batch]] = {}
        for item in run:
            name = item.channel if type(item) is _Batch else item.deltas[0].channel  # type: ignore[union-attr]
            by_channel.setdefault(name, []).append(item)
        out: list[bytes] = []
        for name, items in by_channel.items():
            last = items[-1]
            channel = self._channel(name, None)
            if channel is None:
                out.append(self._fail("too many text channels in one response"))
                break
            if type(last) is _Batch:
                channel.template_event = last.last
            else:
                assert isinstance(last, StreamEvent)
                channel.template, channel.template_event = last, None
            origin = channel.fed
            pieces = []
            for item in items:
                if type(item) is _Batch:
                    slot = item.slot
                    slot.origin, slot.end = origin, origin + len(slot.text)
                else:
                    assert isinstance(item, StreamEvent)
                    data = _utf8(item.deltas[0].text)
                    slot = _Slot(item.sse.raw, item, data, origin, origin + len(data), True)
                channel.slots.append(slot)
                pieces.append(slot.text)
                origin = slot.end
            self._feed(name, channel, b"".join(pieces))
            out.extend(self._sent(name, channel, slot, piece)
                       for slot, piece in self._drain(name, channel, partial=self._ended))
            if self._ended:
                out.append(self._error_events())
                break
        return b"".join(out)

    def _feed(self, name: Channel, channel: _Channel, data: bytes, final: bool = False) -> None:
        """Give a channel's scanner its next input (already in the channel's slots)."""
        before = channel.released
        release = channel.scanner.advance(data, final)
        channel.fed += len(data)
        self._record(name, channel.scanner, release.findings)
        upto = release.upto
        channel.released = upto
        if release.text is not None:
            if channel.changed is None:
                channel.changed = [channel.input(channel.sent, before)]
            channel.changed.append(release.text)
        elif channel.changed is not None and upto > before:
            channel.changed.append(channel.input(before, upto))
        if self._keep_released and (upto > before or release.text):
            text = channel.input(before, upto) if release.text is None else release.text
            self._released.setdefault(name, []).append(text.decode("utf-8", "surrogatepass"))

    def _drain(
        self, name: Channel, channel: _Channel, *, partial: bool = False
    ) -> list[tuple[_Slot, bytes | None]]:
        """The channel's events whose text is now all released, in order.

        Each as (slot, text): text None means the event goes out as its own bytes, for
        what it carries is released unchanged; otherwise it is rebuilt with that text.
        After a redaction, everything released since the last event out goes in one
        rebuilt event (the last one whose text is wholly released), and an event whose
        text was partly in it keeps only the rest. ``partial``: the stream ends here
        (block, boundary), so released text of an event not yet wholly released goes
        out too, in a rebuilt event.
        """
        out: list[tuple[_Slot, bytes | None]] = []
        slots, upto = channel.slots, channel.released
        if channel.changed is not None or partial:
            _singles(slots)  # a rebuild works event by event
        if channel.changed is None:
            while slots and slots[0].end <= upto:
                slot = slots.popleft()
                if slot.whole and channel.sent == slot.origin and slot.event is not None:
                    out.append((slot, None))
                elif slot.end > channel.sent:
                    if slot.event_ends is not None:
                        _singles(slots, slot)
                        continue
                    out.append((slot, slot.text[channel.sent - slot.origin :]))
                channel.sent = slot.end
            if slots and slots[0].text_ends is not None and upto > slots[0].origin:
                # A run partly released: its events wholly released go out as they came.
                head = _released_events(slots[0], upto)
                if head is not None:
                    out.append((head, None))
                    channel.sent = head.end
            if partial and slots and upto > channel.sent:
                slot = slots[0]
                out.append((slot, slot.text[channel.sent - slot.origin : upto - slot.origin]))
                slot.whole = False
                channel.sent = upto
            return out
        covered: list[_Slot] = []
        while slots and slots[0].end <= upto:
            covered.append(slots.popleft())
        if not covered and not (partial and slots):
            return out  # held whole: wait for an event to be wholly released
        target = covered[-1] if covered else slots[0]
        text = b"".join(channel.changed)
        if text:
            out.append((target, text))
        channel.changed = None
        channel.sent = upto
        if slots and slots[0].origin < upto:
            slots[0].whole = False
        return out

    def _sent(self, name: Channel, channel: _Channel, slot: _Slot, data: bytes | None) -> bytes:
        if data is None:
            assert slot.event is not None
            return slot.event
        return self._rebuilt(name, channel, slot, data)

    def _template(self, channel: _Channel) -> StreamEvent:
        if channel.template_event is not None:
            channel.template = self._reread_event(channel.template_event)
            channel.template_event = None
        assert channel.template is not None
        return channel.template

    def _rebuilt(self, name: Channel, channel: _Channel, slot: _Slot, data: bytes) -> bytes:
        """`slot`'s event carrying `data` as its channel's text instead of its own."""
        text = data.decode("utf-8", "surrogatepass")
        view = slot.view
        if view is None:
            view = slot.view = self._reread(slot)
        if slot.mergeable:
            return self._rewrite(view, {name: text})
        # What is left of an event that went out in its own shape: a continuation, modelled
        # on the channel's latest text event (an opening event is no delta to copy).
        if channel.path is not None:
            return serialize(self._field_event(self._template(channel), channel.path, text))
        return serialize(self.provider.event_with_text(self._template(channel), name, text))

    def _reread(self, slot: _Slot) -> StreamEvent:
        assert slot.event is not None
        return self._reread_event(slot.event)

    def _reread_event(self, raw: bytes) -> StreamEvent:
        """A fast-lane event read by the general path, for a rebuild (it was read once)."""
        parser = SseParser(max_event_bytes=self.max_event_bytes)
        [event] = parser.feed(raw) + parser.finish()
        return self.provider.read_event(event)

    def _last_seen(self) -> StreamEvent | None:
        if self._last_event is not None:
            self._last = self._reread_event(self._last_event)
            self._last_event = None
        return self._last

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
        """An event that carries growing texts and more: it keeps its place and shape.

        Each text is scanned on its channel. The channel's earlier events that are now
        wholly released go out first; this event carries what is released of its own
        text (all of it after a redaction, see `_drain`), and the rest follows later in
        a continuation event. Its logprobs go out only when every text of the event goes
        out exactly as it came and nothing of those channels is held: otherwise they
        would release what is held.
        """
        texts: dict[Channel, list[str]] = {}
        for delta in view.deltas:
            texts.setdefault(delta.channel, []).append(delta.text)
        wanted: list[tuple[Channel, str, Found | None]] = [
            (name, "".join(parts), None) for name, parts in texts.items()
        ]
        wanted += [(self._field_channel(view, found), found.text, found) for found in fields]
        before: list[bytes] = []
        new_texts: dict[Channel, str] = {}
        values: dict[JsonPath, object] = {}
        intact = True
        for name, text, found in wanted:
            channel = self._channel(name, view)
            if channel is None:
                return b"".join(before) + self._fail("too many text channels in one response")
            channel.template, channel.template_event = view, None
            if found is not None:
                channel.path = found.path
            data = _utf8(text)
            own = _Slot(None, view, data, channel.fed, channel.fed + len(data), False,
                        mergeable=False)
            channel.slots.append(own)
            self._feed(name, channel, data)
            mine = b""
            for slot, piece in self._drain(name, channel, partial=self._ended):
                if slot is own and piece is not None:
                    mine += piece
                else:
                    before.append(self._sent(name, channel, slot, piece))
            released = mine.decode("utf-8", "surrogatepass")
            if found is None:
                new_texts[name] = released
            else:
                values[found.path] = released
            if self._ended:
                # Block: what was released before the match still goes out, then the error.
                return b"".join(before) + self._ending(view, new_texts, values, fields,
                                                       logprobs)
            intact = intact and mine == data and not channel.slots
        for path in logprobs:
            if not intact or not self._logprobs_clean(view, path):
                values[path] = None
        return b"".join(before) + self._rewrite(view, new_texts, values)

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
            self._feed(name, channel, b"", final=True)
            out.extend(self._sent(name, channel, slot, piece)
                       for slot, piece in self._drain(name, channel, partial=True))
            if self._ended:
                out.append(self._error_events())
                break
        return b"".join(out)

    def _channel(self, name: Channel, view: StreamEvent | None) -> _Channel | None:
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
        """Feed a whole text's scanner; record findings; return the released text."""
        released, found = scanner.finish() if final else scanner.feed(data)
        self._record(name, scanner, found)
        text = released.decode("utf-8", "surrogatepass")
        if self._keep_released and keep:
            self._released.setdefault(name, []).append(text)
        return text

    def _record(self, name: Channel, scanner: TextScan, found: list[Finding]) -> None:
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
                self.provider, str(self.failure), first=self._first, last=self._last_seen()
            )
        rule = self.blocked_by
        if rule.scanner == TOOLS_SCANNER:
            return tool_blocked_events(
                self.provider, rule.rule, first=self._first, last=self._last_seen()
            )
        events = self.provider.error_events(
            f"weir: response blocked by policy: rule '{rule.rule}' ({rule.scanner}) "
            "matched in the model output",
            "weir_response_blocked",
            first=self._first, last=self._last_seen(), kind=ErrorKind.PERMISSION_DENIED,
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


def tool_finding(tool: str, where: str = "tool_calls") -> FindingRecord:
    """The record of a call of a forbidden tool: the `tools` scanner, the tool's name."""
    return FindingRecord(
        "response", where, TOOLS_SCANNER, tool, Action.BLOCK, 0, len(tool), match_hash(tool)
    )


def tool_blocked_events(
    provider: Provider,
    tool: str,
    *,
    first: StreamEvent | None = None,
    last: StreamEvent | None = None,
) -> bytes:
    """The in-band ending for a streamed call of a forbidden tool (guarded or not)."""
    events = provider.error_events(
        f"weir: tool call blocked by policy: tool '{tool}' is not in the workload's tools",
        "weir_tool_blocked",
        first=first, last=last, kind=ErrorKind.PERMISSION_DENIED,
    )
    return b"".join(serialize(e) for e in events)


def _singles(slots: deque[_Slot], popped: _Slot | None = None) -> None:
    """Split every run in `slots` (and `popped`, put back first) into single events."""
    items = ([popped] if popped is not None else []) + list(slots)
    if popped is None and all(slot.event_ends is None for slot in items):
        return
    slots.clear()
    for slot in items:
        slots.extend(slot.singles())


def _released_events(slot: _Slot, upto: int) -> _Slot | None:
    """The leading events of a run whose text is all below `upto`, cut off the run."""
    assert slot.text_ends is not None and slot.event_ends is not None and slot.event
    k = int(np.searchsorted(slot.text_ends, upto - slot.origin, side="right"))
    if k == 0:
        return None
    event_cut, text_cut = int(slot.event_ends[k - 1]), int(slot.text_ends[k - 1])
    head = _Slot(slot.event[:event_cut], None, slot.text[:text_cut], slot.origin,
                 slot.origin + text_cut, True)
    slot.event, slot.text = slot.event[event_cut:], slot.text[text_cut:]
    slot.event_ends = slot.event_ends[k:] - event_cut
    slot.text_ends = slot.text_ends[k:] - text_cut
    slot.origin += text_cut
    return head


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
