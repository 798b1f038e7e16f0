"""The SSE guard's fast lane: one compiled pass frames a chunk's events and reads their text.

A token stream is hundreds of events that differ only in their text: every chat
``choices[i].delta.content`` (or ``tool_calls[j].function.arguments``) chunk, every
``response.output_text.delta`` / ``response.function_call_arguments.delta``, every
Anthropic ``content_block_delta`` of ``text`` or ``partial_json`` repeats the same
bytes around one JSON string (and, for the Responses API, a ``sequence_number``).

This module owns that observation, and nothing else:

- a `Shape` is learned from one event the general path (`SseGuard`) has read in full:
  the event's bytes before its text literal (``head``, with at most one hole for the
  digits of ``"sequence_number":``) and after it (``tail``). It is kept only when the
  general path proved that the event is a text-only event of one channel, with nothing
  else to sweep, *and* that a copy with another text (and another sequence number)
  reads the same way (`learn_shape`). Shapes are per stream: no provider is assumed.
- `frame` (``@njit``) walks a buffer of LF-framed events once. For each complete event
  it records where it starts and ends and, when the event is exactly a known shape
  around a strict, non-empty JSON string, which shape and where the string's decoded
  UTF-8 went in an output buffer. Everything lives in preallocated arrays: no Python
  object per event.

An event the pass cannot classify is left to the general path, which stays the
definition of correct: a CR anywhere (the pass stops and hands the stream over), an
escape it does not decode (a lone surrogate), a raw control character, invalid UTF-8, a
number with a leading zero or more than 15 digits, an empty text, or any byte around
the text that differs from the shape. The property tests hold the two lanes byte-equal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from numba import njit

from extproc.llm.base import Channel

# Shapes one stream may learn (a few channels: choices, tool calls, blocks).
MAX_SHAPES = 16
# `frame` stop reasons.
DONE = 0  # every complete event is framed; the rest (if any) is an incomplete event
STOP_CR = 1  # a CR: the general parser must frame the rest of the stream
STOP_BIG = 2  # an event longer than allowed: the general parser must refuse it
STOP_FULL = 3  # the event arrays are full: call again from `consumed`

# Columns of the shape table.
S_HEAD, S_HEAD_LEN, S_HOLE, S_MID, S_MID_LEN, S_TAIL, S_TAIL_LEN = range(7)
SHAPE_COLS = 7

_NUMBER_KEY = b'"sequence_number":'
_MAX_DIGITS = 15


@dataclass(frozen=True, slots=True)
class Shape:
    """A learned event shape: ``head`` [digits ``mid``] JSON string ``tail``."""

    channel: Channel
    head: bytes  # up to the opening quote of the text, or up to the digits when `hole`
    hole: bool
    mid: bytes  # after the digits, up to the opening quote (empty without a hole)
    tail: bytes  # from the closing quote to the end of the event's blank line


class ShapeTable:
    """The shapes of one stream, packed for `frame`."""

    __slots__ = ("bytes", "channels", "rows", "shapes")

    def __init__(self) -> None:
        self.shapes: list[Shape] = []
        self.channels: list[Channel] = []
        self.bytes = np.zeros(0, dtype=np.uint8)
        self.rows = np.zeros((0, SHAPE_COLS), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.shapes)

    def add(self, shape: Shape) -> None:
        self.shapes.append(shape)
        self.channels.append(shape.channel)
        blob = bytearray()
        rows = np.zeros((len(self.shapes), SHAPE_COLS), dtype=np.int64)
        for i, s in enumerate(self.shapes):
            rows[i, S_HEAD], rows[i, S_HEAD_LEN] = len(blob), len(s.head)
            blob += s.head
            rows[i, S_HOLE] = 1 if s.hole else 0
            rows[i, S_MID], rows[i, S_MID_LEN] = len(blob), len(s.mid)
            blob += s.mid
            rows[i, S_TAIL], rows[i, S_TAIL_LEN] = len(blob), len(s.tail)
            blob += s.tail
        self.bytes = np.frombuffer(bytes(blob), dtype=np.uint8)
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


def shape_candidate(
    raw: bytes, text: str, channel: Channel
) -> tuple[Shape, bytes, str] | None:
    """The shape `raw` would have around its only value literal equal to `text`.

    Returns the shape, a probe (the same event with another text, spelt with escapes,
    and with a hole another number) and the probe's text, for the caller to read with
    the general path. None when `raw` is not a plain LF event or the literal is not
    unique.
    """
    if b"\r" in raw or not raw.endswith(b"\n\n") or raw.startswith(b"\xef\xbb\xbf"):
        return None
    hits = []
    for start, end in string_literals(raw):
        after = raw[end : end + 1]
        if after == b":":
            continue  # a key
        try:
            if json.loads(raw[start:end]) == text:
                hits.append((start, end))
        except ValueError:
            return None
    if len(hits) != 1:
        return None
    start, end = hits[0]
    head, tail = raw[: start + 1], raw[end - 1 :]
    hole, mid = False, b""
    at = head.find(_NUMBER_KEY)
    if at >= 0 and head.count(_NUMBER_KEY) == 1:
        digits = at + len(_NUMBER_KEY)
        while digits < len(head) and head[digits] == 0x20:
            digits += 1
        stop = digits
        while stop < len(head) and 0x30 <= head[stop] <= 0x39:
            stop += 1
        if stop > digits:
            hole, head, mid = True, head[:digits], head[stop:]
    probe_text = PROBE_TEXT if text != PROBE_TEXT else "x"
    literal = json.dumps(probe_text)[1:-1].encode()
    probe = head + (b"1234567" if hole else b"") + mid + literal + tail
    return Shape(channel, head, hole, mid, tail), probe, probe_text


# Spelt with a \u escape, a backslash and a quote: the escapes the pass decodes.
PROBE_TEXT = "weir probe \u00e9 \\ \""


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


@njit(nogil=True, cache=True)
def _classify(buf, i, e, table, rows, out, w, hint):
    """The shape of event [i, e) (trying `hint` first) and its text's end in `out`, or -1."""
    nshapes = rows.shape[0]
    for step in range(nshapes):
        t = (hint + step) % nshapes
        head_len = rows[t, 1]
        tail_len = rows[t, 6]
        if e - i < head_len + tail_len + 1:
            continue
        if not _same(buf, i, table, rows[t, 0], head_len):
            continue
        p = i + head_len
        if rows[t, 2] == 1:
            d = p
            while d < e and 0x30 <= buf[d] <= 0x39:
                d += 1
            digits = d - p
            if digits == 0 or digits > 15 or (digits > 1 and buf[p] == 0x30):
                continue
            p = d
            mid_len = rows[t, 4]
            if p + mid_len > e or not _same(buf, p, table, rows[t, 3], mid_len):
                continue
            p += mid_len
        q, w2 = _string(buf, p, e - tail_len + 1, out, w)
        if q < 0 or w2 == w:
            continue  # not taken, or an empty text (which the general path treats apart)
        if q + tail_len != e or not _same(buf, q, table, rows[t, 5], tail_len):
            continue
        return t, w2
    return -1, w


@njit(nogil=True, cache=True)
def frame(buf, start, max_event, table, rows, starts, ends, kinds, text_starts, text_ends,
          out):  # fmt: skip
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
            t, w2 = _classify(buf, i, e, table, rows, out, w, hint)
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
    table.add(Shape(("content", 0), b'data: {"c":"', False, b"", b'"}\n\n'))
    data = np.frombuffer(b'data: {"c":"a\\u00e9\xc3\xa9"}\n\ndata: {"x":1}\n\n', dtype=np.uint8)
    cap = 4
    arrays = [np.zeros(cap, dtype=np.int64) for _ in range(5)]
    frame(data, 0, 1 << 20, table.bytes, table.rows, *arrays,  # type: ignore[call-arg]
          np.zeros(64, dtype=np.uint8))
