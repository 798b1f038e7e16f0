"""The SSE guard's fast lane: one compiled pass frames a chunk's events and reads their text.

A token stream is hundreds of events that differ only in their text: every chat
``choices[i].delta.content`` (or ``tool_calls[j].function.arguments``) chunk, every
``response.output_text.delta`` / ``response.function_call_arguments.delta``, every
Anthropic ``content_block_delta`` of ``text`` or ``partial_json`` repeats the same
bytes around one JSON string (and a ``sequence_number``, an ``obfuscation`` padding).

This module owns that observation, and nothing else:

- a `Shape` is learned from one event the general path (`SseGuard`) has read in full:
  the event's bytes around its text literal, with a hole for the text and for the
  values that change from event to event: the digits of ``"sequence_number":`` and
  the ``"obfuscation":`` padding (checked against the sweep's own shape for it). The
  guard keeps it only when the general path proves that a copy with another text and
  other values in the holes reads the same way: a text-only event of the same channel,
  with nothing else to sweep (`shape_candidate` makes the copy). Shapes are per
  stream: no provider's field order is assumed.
- `frame` (``@njit``) walks a buffer of LF-framed events once. For each complete event
  it records where it starts and ends and, when the event is exactly a known shape
  around a strict, non-empty JSON string, which shape and where the string's decoded
  UTF-8 went in an output buffer. Everything lives in preallocated arrays: no Python
  object per event.

An event the pass cannot classify is left to the general path, which stays the
definition of correct: a CR anywhere (the pass stops and hands the stream over), an
escape it does not decode (a lone surrogate), a raw control character, invalid UTF-8, a
number with a leading zero or more than 15 digits, padding outside its shape, an empty
text, or any byte around the text that differs from the shape. The property tests hold
the two lanes byte-equal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from numba import njit

from extproc.llm.base import Channel

# Shapes one stream keeps at once (a few channels: choices, tool calls, blocks).
MAX_SHAPES = 16
# `frame` stop reasons.
DONE = 0  # every complete event is framed; the rest (if any) is an incomplete event
STOP_CR = 1  # a CR: the general parser must frame the rest of the stream
STOP_BIG = 2  # an event longer than allowed: the general parser must refuse it
STOP_FULL = 3  # the event arrays are full: call again from `consumed`

# The pieces of a shape, matched in order: the event's own bytes, and three holes.
LITERAL = 0
DIGITS = 1  # the value of "sequence_number": a count, no leading zero, at most 15 digits
PADDING = 2  # the value of "obfuscation": [A-Za-z0-9+/=_-]{0,512}, as the sweep's shape
TEXT = 3  # the text: a strict, non-empty JSON string body

_HOLES = ((b'"sequence_number":', DIGITS), (b'"obfuscation":"', PADDING))
_MAX_DIGITS = 15
_MAX_PADDING = 512
_PADDING_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-")


@dataclass(frozen=True, slots=True)
class Shape:
    """A learned event shape: its bytes with holes, as (kind, literal bytes) pieces."""

    channel: Channel
    pieces: tuple[tuple[int, bytes], ...]


class ShapeTable:
    """The shapes of one stream, packed for `frame`: rows of (first piece, pieces)."""

    __slots__ = ("bytes", "channels", "pieces", "rows", "shapes")

    def __init__(self) -> None:
        self.shapes: list[Shape] = []
        self.channels: list[Channel] = []
        self.bytes = np.zeros(0, dtype=np.uint8)
        self.pieces = np.zeros((0, 3), dtype=np.int64)
        self.rows = np.zeros((0, 2), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.shapes)

    def add(self, shape: Shape) -> None:
        """Add `shape`; past `MAX_SHAPES` the oldest goes (its block or call has ended)."""
        if len(self.shapes) >= MAX_SHAPES:
            del self.shapes[0], self.channels[0]
        self.shapes.append(shape)
        self.channels.append(shape.channel)
        blob = bytearray()
        pieces: list[tuple[int, int, int]] = []
        rows = np.zeros((len(self.shapes), 2), dtype=np.int64)
        for i, s in enumerate(self.shapes):
            rows[i] = (len(pieces), len(s.pieces))
            for kind, literal in s.pieces:
                pieces.append((kind, len(blob), len(literal)))
                blob += literal
        self.bytes = np.frombuffer(bytes(blob), dtype=np.uint8)
        self.pieces = np.array(pieces, dtype=np.int64).reshape(-1, 3)
        self.rows = rows


def string_literals(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every JSON string literal in `data`, quotes included."""
    found: list[tuple[int, int]] = []
    i, n = 0, len(data)
    while i < n:
        if data[i] != 0x22:
            i += 1
            continue
        j = i + 1
        while j < n and data[j] != 0x22:
            j += 2 if data[j] == 0x5C else 1
        if j >= n:
            break
        found.append((i, j + 1))
        i = j + 1
    return found


# Spelt with a \u escape, a backslash and a quote: the escapes the pass decodes.
PROBE_TEXT = "weir probe \u00e9 \\ \""
_PROBE_HOLES = {DIGITS: b"1234567", PADDING: b"Zz09+/=_-"}


def _holes(part: bytes) -> list[tuple[int, bytes]] | None:
    """`part` (bytes around the text) as pieces, its number and padding values as holes."""
    spans: list[tuple[int, int, int]] = []
    for key, kind in _HOLES:
        if part.count(key) > 1:
            return None
        at = part.find(key)
        if at < 0:
            continue
        start = at + len(key)
        if kind == DIGITS:
            while start < len(part) and part[start] == 0x20:
                start += 1
            stop = start
            while stop < len(part) and 0x30 <= part[stop] <= 0x39:
                stop += 1
        else:
            stop = part.find(b'"', start)
            if stop < 0 or not set(part[start:stop]) <= _PADDING_BYTES:
                return None
        if stop > start or kind == PADDING:
            spans.append((start, stop, kind))
    pieces: list[tuple[int, bytes]] = []
    at = 0
    for start, stop, kind in sorted(spans):
        pieces += [(LITERAL, part[at:start]), (kind, b"")]
        at = stop
    pieces.append((LITERAL, part[at:]))
    return [piece for piece in pieces if piece[0] != LITERAL or piece[1]]


def shape_candidate(
    raw: bytes, text: str, channel: Channel
) -> tuple[Shape, bytes, str] | None:
    """The shape `raw` would have around its only value literal equal to `text`.

    Returns the shape, a probe (the same event with another text, spelt with escapes,
    and other values in its holes) and the probe's text, for the caller to read with
    the general path. None when `raw` is not a plain LF event or the literal is not
    unique.
    """
    if b"\r" in raw or not raw.endswith(b"\n\n") or raw.startswith(b"\xef\xbb\xbf"):
        return None
    hits = []
    for start, end in string_literals(raw):
        if raw[end : end + 1] == b":":
            continue  # a key
        try:
            if json.loads(raw[start:end]) == text:
                hits.append((start, end))
        except ValueError:
            return None
    if len(hits) != 1:
        return None
    start, end = hits[0]
    head, tail = _holes(raw[: start + 1]), _holes(raw[end - 1 :])
    if head is None or tail is None:
        return None
    pieces = (*head, (TEXT, b""), *tail)
    probe_text = PROBE_TEXT if text != PROBE_TEXT else "x"
    literal = json.dumps(probe_text)[1:-1].encode()
    probe = b"".join(
        literal if kind == TEXT else _PROBE_HOLES.get(kind, value) for kind, value in pieces
    )
    return Shape(channel, pieces), probe, probe_text


@njit(nogil=True, cache=True, inline="always")
def _same(buf, at, table, off, length):
    for k in range(length):  # noqa: SIM110 (numba compiles the loop, not a generator)
        if buf[at + k] != table[off + k]:
            return False
    return True


@njit(nogil=True, cache=True)
def _string(buf, p, end, out, w):
    """Decode the JSON string whose body starts at `p`; (index of its closing quote, new w).

    -1 for anything the fast lane does not take: a raw control character, invalid
    UTF-8, an unknown escape, a surrogate escape, or no closing quote before `end`.
    """
    while p < end:
        c = buf[p]
        if c == 0x22:
            return p, w
        if c == 0x5C:
            if p + 1 >= end:
                return -1, w
            e = buf[p + 1]
            if e == 0x75:  # \uXXXX
                if p + 6 > end:
                    return -1, w
                cp = 0
                for k in range(2, 6):
                    h = buf[p + k]
                    if 0x30 <= h <= 0x39:
                        v = h - 0x30
                    elif 0x61 <= h <= 0x66:
                        v = h - 0x57
                    elif 0x41 <= h <= 0x46:
                        v = h - 0x37
                    else:
                        return -1, w
                    cp = cp * 16 + v
                if 0xD800 <= cp <= 0xDFFF:
                    return -1, w  # surrogates: the general path decides
                if cp < 0x80:
                    out[w] = cp
                    w += 1
                elif cp < 0x800:
                    out[w] = 0xC0 | (cp >> 6)
                    out[w + 1] = 0x80 | (cp & 0x3F)
                    w += 2
                else:
                    out[w] = 0xE0 | (cp >> 12)
                    out[w + 1] = 0x80 | ((cp >> 6) & 0x3F)
                    out[w + 2] = 0x80 | (cp & 0x3F)
                    w += 3
                p += 6
                continue
            if e == 0x22 or e == 0x5C or e == 0x2F:
                out[w] = e
            elif e == 0x6E:
                out[w] = 0x0A
            elif e == 0x74:
                out[w] = 0x09
            elif e == 0x72:
                out[w] = 0x0D
            elif e == 0x62:
                out[w] = 0x08
            elif e == 0x66:
                out[w] = 0x0C
            else:
                return -1, w
            w += 1
            p += 2
            continue
        if c < 0x20:
            return -1, w
        if c < 0x80:
            out[w] = c
            w += 1
            p += 1
            continue
        # Strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF.
        if 0xC2 <= c <= 0xDF:
            n = 2
            lo, hi = 0x80, 0xBF
        elif 0xE0 <= c <= 0xEF:
            n = 3
            lo = 0xA0 if c == 0xE0 else 0x80
            hi = 0x9F if c == 0xED else 0xBF
        elif 0xF0 <= c <= 0xF4:
            n = 4
            lo = 0x90 if c == 0xF0 else 0x80
            hi = 0x8F if c == 0xF4 else 0xBF
        else:
            return -1, w
        if p + n > end:
            return -1, w
        b1 = buf[p + 1]
        if b1 < lo or b1 > hi:
            return -1, w
        for k in range(2, n):
            if (buf[p + k] & 0xC0) != 0x80:
                return -1, w
        for k in range(n):
            out[w + k] = buf[p + k]
        w += n
        p += n
    return -1, w


@njit(nogil=True, cache=True, inline="always")
def _padding_byte(c):
    return (0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A or 0x30 <= c <= 0x39 or c == 0x2B
            or c == 0x2F or c == 0x3D or c == 0x5F or c == 0x2D)


@njit(nogil=True, cache=True)
def _classify(buf, i, e, table, pieces, rows, out, w, hint):
    """The shape of event [i, e) (trying `hint` first) and its text's end in `out`, or -1."""
    nshapes = rows.shape[0]
    for step in range(nshapes):
        t = (hint + step) % nshapes
        p = i
        w2 = w
        ok = True
        for k in range(rows[t, 0], rows[t, 0] + rows[t, 1]):
            kind = pieces[k, 0]
            if kind == 0:
                length = pieces[k, 2]
                if p + length > e or not _same(buf, p, table, pieces[k, 1], length):
                    ok = False
                    break
                p += length
            elif kind == 1:
                d = p
                while d < e and 0x30 <= buf[d] <= 0x39:
                    d += 1
                digits = d - p
                if digits == 0 or digits > 15 or (digits > 1 and buf[p] == 0x30):
                    ok = False
                    break
                p = d
            elif kind == 2:
                d = p
                while d < e and d - p <= 512 and _padding_byte(buf[d]):
                    d += 1
                if d - p > 512:
                    ok = False
                    break
                p = d
            else:
                q, w2 = _string(buf, p, e, out, w)
                if q < 0 or w2 == w:
                    ok = False  # not taken, or an empty text (the general path's case)
                    break
                p = q
        if ok and p == e:
            return t, w2
    return -1, w


@njit(nogil=True, cache=True)
def frame(buf, start, max_event, table, pieces, rows, starts, ends, kinds, text_starts,
          text_ends, out):  # fmt: skip
    """Frame and classify the LF-delimited events of ``buf[start:]``.

    Returns (events framed, bytes consumed from `start`, stop reason). Event k is
    ``buf[starts[k]:ends[k]]``; ``kinds[k]`` is its shape or -1; a classified event's
    decoded text is ``out[text_starts[k]:text_ends[k]]``, texts written in order.
    """
    n = buf.shape[0]
    cap = starts.shape[0]
    i = start
    k = 0
    w = 0
    hint = 0
    while i < n:
        if k >= cap:
            return k, i - start, 3
        c = buf[i]
        if c == 0x0D:
            return k, i - start, 1
        if c == 0x0A:
            e = i + 1  # a stray blank line: an empty block of its own
        else:
            e = -1
            j = i
            while j + 1 < n:
                b = buf[j]
                if b == 0x0D:
                    return k, i - start, 1
                if b == 0x0A and buf[j + 1] == 0x0A:
                    e = j + 2
                    break
                j += 1
            if e < 0:
                if n - i > max_event:
                    return k, i - start, 2
                break
        if e - i > max_event:
            return k, i - start, 2
        starts[k] = i
        ends[k] = e
        t = -1
        if rows.shape[0] > 0 and c != 0x0A:
            t, w2 = _classify(buf, i, e, table, pieces, rows, out, w, hint)
            if t >= 0:
                text_starts[k] = w
                text_ends[k] = w2
                w = w2
                hint = t
        kinds[k] = t
        k += 1
        i = e
    return k, i - start, 0


def warm_up() -> None:
    """JIT `frame` (from numba's on-disk cache after the first run), before serving."""
    table = ShapeTable()
    raw = b'data: {"n":7,"c":"a","obfuscation":"x"}\n\n'
    found = shape_candidate(raw.replace(b'"n"', b'"sequence_number"'), "a", ("content", 0))
    assert found is not None
    table.add(found[0])
    data = np.frombuffer(found[1] + b'data: {"x":1}\n\n', dtype=np.uint8)
    cap = 4
    arrays = [np.zeros(cap, dtype=np.int64) for _ in range(5)]
    frame(data, 0, 1 << 20, table.bytes, table.pieces, table.rows,  # type: ignore[call-arg]
          *arrays, np.zeros(256, dtype=np.uint8))
