"""Incremental Server-Sent-Events parser and serialiser (sans-I/O).

This module owns the byte level of an SSE response body: bytes in, `SseEvent`
values out, and back to bytes. It never touches a socket, so every edge case
is a plain unit test (the h11 model).

Parsing follows the WHATWG EventSource rules ("Interpreting an event stream"):

- lines end with CRLF, LF or a lone CR, and may be mixed within one stream;
- a blank line ends an event; a line starting with ``:`` is a comment;
- ``field:value`` drops one space after the colon if present; a line with no
  colon is a field with an empty value; unknown fields are ignored for the
  parsed view but kept in the bytes;
- ``data`` lines are joined with ``"\\n"``; ``id`` values containing NUL are
  ignored; ``retry`` is kept only when it is all ASCII digits;
- a UTF-8 byte order mark at the very start of the stream is skipped (and kept
  in the first event's bytes).

Where Weir departs from a browser, on purpose:

- **Every block is an event**, including comment-only blocks (``: ping``) and
  stray blank lines, so that pass-through is byte-exact. A browser would
  dispatch none of them; callers see ``data is None`` and forward ``raw``.
- **A final event without its blank line** is returned by `SseParser.finish`
  (a browser discards it). Weir forwards what the upstream sent, scanned.
- **Strict UTF-8.** Each event is decoded strictly when it is complete; invalid
  UTF-8 raises ``SseError("invalid UTF-8 at byte N")`` where N is the offset in
  the whole stream. A browser would substitute U+FFFD, but a scanner must not
  judge text that differs from the bytes the client will decode.
- **Bounded.** An event (complete or still buffering) longer than
  ``max_event_bytes`` raises `SseError`. After any `SseError` the parser is
  spent: every later call raises again, so the caller fails closed.

One subtlety of chunked input: when the fed bytes end with the CR of an event's
closing blank line, that event is held until the next byte (or `finish`),
because only that byte tells whether the LF belongs to this event. Without it
the event's bytes, and so the events, would depend on where the chunks split.

Use in the response pipeline::

    parser = SseParser()
    for event in parser.feed(chunk):          # zero or more complete events
        out.append(serialize(event))          # == event.raw, byte-exact
    ...
    for event in parser.finish(): ...         # at end of stream

`SseEvent.with_data` builds a modified event (same fields, same line ending
style, new ``data`` lines); `SseEvent.build` makes a fresh one (error events).
"""

from __future__ import annotations

import re
from typing import NamedTuple, NoReturn

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "SseError",
    "SseEvent",
    "SseParser",
    "serialize",
]

DEFAULT_MAX_EVENT_BYTES = 1024 * 1024

_BOM = b"\xef\xbb\xbf"
_CR = 13
_LF = 10

# The end of an event: a line terminator followed by a blank line's terminator.
# Atomic groups so that CRLF is never read as "CR line end, then LF blank line".
_EVENT_END = re.compile(rb"(?>\r\n|\r|\n)(?>\r\n|\r|\n)")
_LINE_SPLIT = re.compile(r"\r\n|\r|\n")
_FIRST_EOL = re.compile(rb"\r\n|\r|\n")


class SseError(ValueError):
    """The byte stream is not an SSE stream Weir can judge; the caller fails closed."""


class SseEvent(NamedTuple):
    """One event block: its exact bytes and the parsed view of them.

    A NamedTuple rather than a frozen dataclass: just as immutable, and several times
    cheaper to create, which matters at one per token.

    ``raw`` always holds the bytes this event serialises to. For a parsed event
    they are the original bytes, up to and including the closing blank line.
    ``data`` is None when the block had no ``data`` line. ``comments`` holds the
    text after each ``:`` (one leading space dropped, as for field values).
    ``line_ending`` is the terminator of the first line (b"\\n" when there is
    none), used when the event is rebuilt.
    """

    raw: bytes
    event: str | None = None
    data: str | None = None
    id: str | None = None
    retry: int | None = None
    comments: tuple[str, ...] = ()
    line_ending: bytes = b"\n"

    @classmethod
    def build(
        cls,
        data: str | None,
        *,
        event: str | None = None,
        id: str | None = None,
        line_ending: bytes = b"\n",
    ) -> SseEvent:
        """A fresh event (``event:`` then ``id:`` then ``data:`` lines, then a blank line)."""
        lines: list[str] = []
        if event is not None:
            lines.append(f"event: {event}")
        if id is not None:
            lines.append(f"id: {id}")
        if data is not None:
            lines.extend(_data_lines(data, "data: "))
        return _from_lines(lines, line_ending)

    def with_data(self, new_data: str) -> SseEvent:
        """This event with its ``data`` replaced; every other line is kept as it was.

        The new data lines sit where the first old one was (after the other
        lines if there was none), and use the old line ending style. A rebuilt
        event always ends with a blank line, so anything may follow it.
        """
        simple = self._simple_with_data(new_data)
        if simple is not None:
            return simple
        bom = self.raw.startswith(_BOM)
        lines = _block_lines(self.raw[3:] if bom else self.raw)
        kept: list[str] = []
        prefix = "data: "
        inserted = False
        for line in lines:
            if _field_name(line) == "data":
                if not inserted:
                    # Mimic "data:x" when the old line had no space, as long as
                    # dropping the space cannot eat a leading space of the value.
                    if not line.startswith("data: "):
                        prefix = "data:"
                    kept.extend(_data_lines(new_data, prefix))
                    inserted = True
                continue
            kept.append(line)
        if not inserted:
            kept.extend(_data_lines(new_data, prefix))
        return _from_lines(kept, self.line_ending, bom=bom)


    def _simple_with_data(self, new_data: str) -> SseEvent | None:
        """`with_data` for the common shape, [``event: X``] then one ``data: `` line.

        Every token event of the three providers looks like this, so rebuilding it need
        not re-parse the block; anything else (comments, ids, several data lines, no
        space after the colon, a BOM) takes the general path.
        """
        if self.data is None or self.id is not None or self.retry is not None or self.comments:
            return None
        if "\n" in new_data or "\r" in new_data:
            return None
        eol = self.line_ending.decode("ascii")
        head = "" if self.event is None else f"event: {self.event}{eol}"
        if self.raw != f"{head}data: {self.data}{eol}{eol}".encode():
            return None
        raw = f"{head}data: {new_data}{eol}{eol}".encode()
        return SseEvent(raw, self.event, new_data, None, None, (), self.line_ending)


def serialize(event: SseEvent) -> bytes:
    """The bytes of `event`: the original bytes if it was parsed and never changed."""
    return event.raw


class SseParser:
    """Bytes in (`feed`, `finish`), complete `SseEvent` values out.

    Any chunking of the same stream yields the same events. ``held_bytes`` is
    the number of bytes buffered in an incomplete event (bounded by
    ``max_event_bytes``).
    """

    __slots__ = (
        "_buf",
        "_consumed",
        "_crlf",
        "_error",
        "_finished",
        "_max",
        "_scan",
        "_skip",
        "_started",
    )

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        if max_event_bytes < 1:
            raise ValueError("max_event_bytes must be positive")
        self._max = max_event_bytes
        self._buf = bytearray()
        # Stream offset of _buf[0], for error messages.
        self._consumed = 0
        # Where the search for the next event end resumes inside _buf.
        self._scan = 0
        # False until the BOM question is settled at the stream start.
        self._started = False
        # 3 while the first event is incomplete and the stream began with a BOM.
        self._skip = 0
        self._finished = False
        self._error: SseError | None = None
        # Whether the last blank line was CRLF: which pattern _find_blank_line tries first.
        self._crlf = False

    @property
    def held_bytes(self) -> int:
        return len(self._buf)

    def feed(self, chunk: bytes) -> list[SseEvent]:
        self._check_usable()
        if self._finished:
            self._fail(SseError("feed() after finish()"))
        if not chunk:
            return []
        self._buf += chunk
        return self._drain(final=False)

    def finish(self) -> list[SseEvent]:
        """Everything still held: the last events, including one with no blank line."""
        self._check_usable()
        if self._finished:
            return []
        self._finished = True
        return self._drain(final=True)

    def take_held(self) -> bytes:
        """Hand over the incomplete event held, for a caller that frames what follows.

        The SSE guard's fast lane frames LF-delimited events itself and gives this
        parser only the events it does not classify (`feed`) and the bytes it framed
        (`skip`), so error offsets stay those of the whole stream. b"" before the stream
        start is settled (a BOM may still be arriving) or after an error.
        """
        if self._error is not None or not self._started or self._skip or not self._buf:
            return b""
        held = bytes(self._buf)
        self._buf.clear()
        self._scan = 0
        return held

    def skip(self, size: int) -> None:
        """Count `size` bytes framed elsewhere as read (see `take_held`)."""
        self._consumed += size

    def _check_usable(self) -> None:
        if self._error is not None:
            raise SseError(f"parser failed earlier: {self._error}")

    def _fail(self, error: SseError) -> NoReturn:
        self._error = error
        raise error

    def _drain(self, final: bool) -> list[SseEvent]:
        buf = self._buf
        size = len(buf)
        events: list[SseEvent] = []
        start = 0
        if not self._started:
            if buf.startswith(_BOM):
                self._skip = 3
                self._started = True
            elif _BOM.startswith(bytes(buf[:3])) and not final:
                return events  # could still become a BOM
            else:
                self._started = True
        skip = self._skip
        scan = max(self._scan, skip)
        while start < size:
            body = start + skip
            end = -1
            if body < size and buf[body] in (_CR, _LF):
                # A blank line right at the event start: an empty block.
                if buf[body] == _LF:
                    end = body + 1
                elif body + 1 < size:
                    end = body + 2 if buf[body + 1] == _LF else body + 1
                elif final:
                    end = body + 1
            elif body < size:
                at = max(scan, body)
                end, lone_cr = self._find_blank_line(buf, at)
                if end < 0 and not lone_cr:
                    # A later blank line needs a new byte; "\n\r\n" is 3 bytes long.
                    scan = max(body, size - 2)
                elif lone_cr:
                    match = _EVENT_END.search(buf, at)
                    if match is None:
                        # A later match needs a new byte; a match is at most 4 bytes long.
                        scan = max(body, size - 3)
                    elif buf[match.end() - 1] == _CR and match.end() == size and not final:
                        # The CR may be the first half of a CRLF still to come.
                        scan = match.start()
                    else:
                        end = match.end()
            if end < 0:
                break
            if end - start > self._max:
                self._fail(self._too_big(start))
            events.append(self._event(buf, start, end, skip))
            start = end
            skip = self._skip = 0
            scan = start
        if final and start < size:
            if size - start > self._max:
                self._fail(self._too_big(start))
            events.append(self._event(buf, start, size, skip))
            start = size
            self._skip = 0
        if start:
            del buf[:start]
            self._consumed += start
            scan -= start
        self._scan = max(scan, 0)
        if len(buf) > self._max:
            self._fail(self._too_big(0))
        return events

    def _find_blank_line(self, buf: bytearray, at: int) -> tuple[int, bool]:
        """(end of the first blank line at or after `at` or -1, whether a lone CR interferes).

        LF and CRLF streams (what providers send) take this path: two bounded finds at C
        speed, each scanning no further than the event. The stream's own style is tried
        first so that the other find stops there. A lone CR on the way means the regex
        must decide, and so does a CR at the end of the buffer (it may become CRLF).
        """
        first, second = (b"\n\r\n", b"\n\n") if self._crlf else (b"\n\n", b"\n\r\n")
        hit = buf.find(first, at)
        other = buf.find(second, at, hit + len(second) if hit >= 0 else len(buf))
        if other >= 0 and (hit < 0 or other < hit):
            hit, first = other, second
        stop = hit + len(first) if hit >= 0 else len(buf)
        if buf.count(b"\r", at, stop) != buf.count(b"\r\n", at, stop):
            return -1, True
        if hit < 0:
            return -1, buf.endswith(b"\r")
        self._crlf = first == b"\n\r\n"
        return stop, False

    def _too_big(self, start: int) -> SseError:
        return SseError(f"event at byte {self._consumed + start} exceeds {self._max} bytes")

    def _event(self, buf: bytearray, start: int, end: int, skip: int) -> SseEvent:
        raw = bytes(buf[start:end])
        try:
            text = raw[skip:].decode("utf-8")
        except UnicodeDecodeError as exc:
            offset = self._consumed + start + skip + exc.start
            self._fail(SseError(f"invalid UTF-8 at byte {offset}"))
        if b"\r" not in raw:
            if not skip and raw.startswith(b"data: ") and raw.find(b"\n") == len(raw) - 2:
                # One `data: ` line and the blank line: nearly every token event. The
                # general parse gives exactly this (a property test keeps them equal).
                return SseEvent(raw, None, text[6:-2], None, None, (), b"\n")
            return _parse_block(raw, text, b"\n")
        eol = _FIRST_EOL.search(raw, skip)
        return _parse_block(raw, text, eol.group() if eol is not None else b"\n")


def _parse_block(raw: bytes, text: str, line_ending: bytes) -> SseEvent:
    event: str | None = None
    data: list[str] | None = None
    last_id: str | None = None
    retry: int | None = None
    comments: list[str] = []
    if "\r" not in text:
        lines = text.split("\n")
    elif text.count("\r") == text.count("\r\n"):
        lines = text.replace("\r\n", "\n").split("\n")
    else:
        lines = _LINE_SPLIT.split(text)
    for line in lines:
        if not line:
            continue
        colon = line.find(":")
        if colon == 0:
            comments.append(line[2:] if line.startswith(": ") else line[1:])
            continue
        if colon < 0:
            name, value = line, ""
        else:
            name = line[:colon]
            value = line[colon + 2 :] if line.startswith(" ", colon + 1) else line[colon + 1 :]
        if name == "data":
            if data is None:
                data = [value]
            else:
                data.append(value)
        elif name == "event":
            event = value
        elif name == "id":
            if "\x00" not in value:
                last_id = value
        # The length cap keeps int() away from its digit limit on hostile input.
        elif name == "retry" and value.isascii() and value.isdigit() and len(value) <= 18:
            retry = int(value)
    return SseEvent(
        raw=raw,
        event=event,
        data=None if data is None else "\n".join(data),
        id=last_id,
        retry=retry,
        comments=tuple(comments),
        line_ending=line_ending,
    )


def _block_lines(raw: bytes) -> list[str]:
    return [line for line in _LINE_SPLIT.split(raw.decode("utf-8")) if line]


def _field_name(line: str) -> str:
    colon = line.find(":")
    return line if colon < 0 else line[:colon]


def _data_lines(data: str, prefix: str) -> list[str]:
    # Only LF separates data lines on the way in; a CR inside the new text would
    # end the line on the wire, so it is split on as well rather than smuggled.
    parts = _LINE_SPLIT.split(data)
    if prefix == "data:" and any(part.startswith(" ") for part in parts):
        prefix = "data: "
    return [prefix + part for part in parts]


def _from_lines(lines: list[str], line_ending: bytes, *, bom: bool = False) -> SseEvent:
    eol = line_ending.decode("ascii")
    text = eol.join(lines) + eol + eol if lines else eol
    # A rebuilt first event keeps the stream's BOM in front, where it was.
    raw = (_BOM if bom else b"") + text.encode("utf-8")
    return _parse_block(raw, text, line_ending)
