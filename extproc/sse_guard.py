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

from dataclasses import dataclass, field

from extproc.audit import FindingRecord, match_hash
from extproc.llm.base import BadResponseBody, Channel, ErrorKind, Provider, StreamEvent, Usage
from extproc.scan_plan import ScanPlan
from extproc.scanner import StreamScanner
from extproc.sse import SseError, SseEvent, SseParser, serialize
from mesh.verdicts import Action

# An upstream that invents thousands of choices or blocks would otherwise cost a
# scanner each; no real response comes near this.
MAX_CHANNELS = 256


@dataclass
class _Channel:
    scanner: StreamScanner
    template: StreamEvent  # the last event that carried text for this channel


@dataclass
class SseGuard:
    provider: Provider
    plan: ScanPlan
    max_event_bytes: int = 1 << 20
    findings: list[FindingRecord] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    blocked_by: FindingRecord | None = None
    failure: str | None = None  # why the stream was ended by Weir, if it was
    events: int = 0
    saw_terminal: bool = False  # the provider's end-of-stream event was read (and released)

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
            except BadResponseBody as exc:
                if run:
                    out.append(self._merged(run))
                if not self._ended:
                    out.append(self._fail(f"unreadable stream event: {exc}"))
                break
            if self._first is None:
                self._first = view
            self._last = view
            if view.usage is not None:
                self.usage = self.usage.merged(view.usage)
            if view.terminal:
                self.saw_terminal = True
            if view.mergeable:
                run.append(view)
                continue
            if run:
                out.append(self._merged(run))
                run = []
                if self._ended:
                    break
            if view.deltas:
                out.append(self._deltas(view))
            elif _is_keepalive(view):
                out.append(serialize(event))
            else:
                out.append(self._flush_all())
                if not self._ended:
                    out.append(self._boundary(view))
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

    def _deltas(self, view: StreamEvent) -> bytes:
        new_texts: dict[Channel, str] = {}
        for delta in view.deltas:
            channel = self._channel(delta.channel, view)
            if channel is None:
                return self._fail("too many text channels in one response")
            channel.template = view
            released = self._scan(delta.channel, channel.scanner, _utf8(delta.text), final=False)
            if self._ended:
                # Block: what was released before the match still goes out, then the error.
                prefix = self._rewrite(view, {delta.channel: released}) if released else b""
                return prefix + self._error_events()
            new_texts[delta.channel] = new_texts.get(delta.channel, "") + released
        return self._rewrite(view, new_texts)

    def _boundary(self, view: StreamEvent) -> bytes:
        if not view.snapshots:
            return serialize(view.sse)
        new_texts: dict[Channel, str] = {}
        for snapshot in view.snapshots:
            if snapshot.channel in self._released:
                new_texts[snapshot.channel] = "".join(self._released[snapshot.channel])
            else:
                # A whole text we never saw as deltas (e.g. initial text of a block).
                scanner = self.plan.stream()
                text = self._scan(snapshot.channel, scanner, _utf8(snapshot.text), final=False)
                if not self._ended:
                    text += self._scan(snapshot.channel, scanner, b"", final=True)
                if self._ended:
                    return self._error_events()
                new_texts[snapshot.channel] = text
        return self._rewrite(view, new_texts)

    def _flush_all(self) -> bytes:
        out: list[bytes] = []
        for name, channel in list(self._channels.items()):
            del self._channels[name]
            tail = self._scan(name, channel.scanner, b"", final=True)
            if tail:
                out.append(serialize(self.provider.event_with_text(channel.template, name, tail)))
            if self._ended:
                out.append(self._error_events())
                break
        return b"".join(out)

    def _channel(self, name: Channel, view: StreamEvent) -> _Channel | None:
        channel = self._channels.get(name)
        if channel is None:
            if len(self._channels) >= MAX_CHANNELS:
                return None
            channel = _Channel(self.plan.stream(), view)
            self._channels[name] = channel
        return channel

    def _scan(self, name: Channel, scanner: StreamScanner, data: bytes, *, final: bool) -> str:
        """Feed one channel's scanner; record findings; return the released text."""
        released, found = scanner.finish() if final else scanner.feed(data)
        for finding in found:
            record = FindingRecord(
                "response", "/".join(map(str, name)), finding.scanner, finding.rule,
                self.plan.action_for(finding), finding.start, finding.end,
                match_hash(scanner.text_of(finding)),
            )
            self.findings.append(record)
            if record.action == Action.BLOCK and self.blocked_by is None:
                self.blocked_by = record
                self._ended = True
        text = released.decode("utf-8", "surrogatepass")
        if self._keep_released:
            self._released.setdefault(name, []).append(text)
        return text

    def _rewrite(self, view: StreamEvent, new_texts: dict[Channel, str]) -> bytes:
        return serialize(self.provider.rewrite_event(view, new_texts))

    def _error_events(self) -> bytes:
        if self.blocked_by is None:
            return stream_error_events(
                self.provider, str(self.failure), first=self._first, last=self._last
            )
        rule = self.blocked_by
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


def _is_keepalive(view: StreamEvent) -> bool:
    if view.terminal or view.error is not None or view.snapshots or view.usage is not None:
        return False
    if view.payload is None:
        return view.sse.data is None  # comments and empty blocks; `data: [DONE]` has data
    return isinstance(view.payload, dict) and view.payload.get("type") == "ping"
