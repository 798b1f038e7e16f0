"""An incremental decoder of the string contents of a JSON document, with source positions.

Tool-call arguments (and Anthropic's ``partial_json``) are JSON documents carried
inside a JSON string, streamed in arbitrary pieces. The agent reads them with
``json.loads``, so a key spelled ``\\u0041KIA...`` or a PEM key whose newlines are
``\\n`` reaches it decoded, while the source text shows neither. The scanner must
read what the agent reads: the decoded characters of every string (keys and values)
of the document, in order.

`JsonStringDecoder` is sans-I/O: ``feed(source_piece)`` returns `Segment` values,
each a run of decoded characters with the span of source text it came from, so a
finding in decoded text maps back to the exact source bytes to rewrite. A piece may
end anywhere, in the middle of an escape or of a surrogate pair; what cannot be
decoded yet is kept (``pending_start`` says from where) until the next piece.

Text outside strings may only be JSON structure (brackets, commas, colons,
whitespace, numbers, ``true``/``false``/``null``); anything else means the document
is not JSON, and from that character on the source is passed through as *raw*
segments, read as plain text (as the scanner read all arguments before), so nothing
escapes the scanner either way. Successive strings are read with a line break
between them (a zero-width `SEPARATOR` segment), as a reader would see them apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
            "t": "\t"}
_PLAIN_RUN = re.compile(r'[^"\\]+')
_STRUCTURE_RUN = re.compile(r"[\s{}\[\],:0-9.eE+\-truefalsn]+")
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")
_WORD_TAIL = re.compile(r"[0-9A-Za-z+\-.]+$")
REPLACEMENT = "\ufffd"
RAW = -1  # the string number of raw (non-JSON) segments
SEPARATOR = -2  # the string number of the break read between two strings


@dataclass(frozen=True, slots=True)
class Segment:
    """Decoded `text` from source offsets [source_start, source_end) of string `string`.

    A plain run has ``len(text) == source_end - source_start`` (character for
    character); an escape is one character from a longer source span. `string` numbers
    the document's strings from 0, or is `RAW`.
    """

    text: str
    source_start: int
    source_end: int
    string: int

    @property
    def plain(self) -> bool:
        return len(self.text) == self.source_end - self.source_start and self.string != SEPARATOR


class JsonStringDecoder:
    """Source pieces in, decoded string segments out; offsets count from the first piece."""

    __slots__ = ("_buffer", "_buffer_start", "_high", "_in_string", "_raw", "_strings", "_word",
                 "_word_start")

    def __init__(self) -> None:
        self._buffer = ""  # source not yet consumed (an escape cut by the piece end)
        self._buffer_start = 0  # absolute offset of _buffer[0]
        self._in_string = False
        self._raw = False
        self._strings = 0  # strings opened so far
        self._high: tuple[int, int] | None = None  # a high surrogate escape: (code, start)
        # Letters and digits just read as structure (`true`, `1e5`): if the text turns out
        # not to be JSON, they are the start of the raw text and must be scanned with it.
        self._word = ""
        self._word_start = 0

    @property
    def raw(self) -> bool:
        return self._raw

    @property
    def pending_start(self) -> int:
        """Source offset from which nothing is decoded yet (a cut escape, a high surrogate)."""
        if self._high is not None:
            return self._high[1]
        if self._word:
            return self._word_start  # may yet be the start of raw text
        return self._buffer_start

    def feed(self, piece: str) -> list[Segment]:
        text = self._buffer + piece
        base = self._buffer_start
        out: list[Segment] = []
        i, n = 0, len(text)
        while i < n:
            if self._raw:
                self._flush_high(out)
                out.append(Segment(self._word + text[i:], base + i - len(self._word), base + n,
                                   RAW))
                self._word = ""
                i = n
                break
            if not self._in_string:
                run = _STRUCTURE_RUN.match(text, i)
                if run is not None:
                    word = _WORD_TAIL.search(run.group())
                    if word is None:
                        self._word = ""
                    elif word.start() == 0 and self._word_start + len(self._word) == base + i:
                        self._word += word.group()  # the word goes on from the last piece
                    else:
                        self._word, self._word_start = word.group(), base + i + word.start()
                    i = run.end()
                    continue
                self._word = "" if text[i] == '"' else self._word
                if text[i] == '"':
                    self._in_string = True
                    self._strings += 1
                    i += 1
                    continue
                self._raw = True
                continue
            run = _PLAIN_RUN.match(text, i)
            if run is not None:
                self._flush_high(out)
                out.append(Segment(run.group(), base + i, base + run.end(), self._strings - 1))
                i = run.end()
                continue
            if text[i] == '"':
                self._flush_high(out)
                self._in_string = False
                # A line break between strings, from no source: a key and its value must
                # not read as one word (rules anchor on word boundaries).
                out.append(Segment("\n", base + i, base + i, SEPARATOR))
                i += 1
                continue
            # A backslash: decode one escape, or wait for the rest of it.
            if i + 1 >= n:
                break
            kind = text[i + 1]
            if kind != "u":
                self._flush_high(out)
                decoded = _ESCAPES.get(kind)
                if decoded is None:
                    # Not JSON; read it as written from here on.
                    self._raw = True
                    continue
                out.append(Segment(decoded, base + i, base + i + 2, self._strings - 1))
                i += 2
                continue
            if i + 6 > n:
                if _HEX4.match(text[i + 2 : i + 6].ljust(4, "0")) is None:
                    self._raw = True
                    continue
                break
            digits = text[i + 2 : i + 6]
            if _HEX4.fullmatch(digits) is None:
                self._raw = True
                continue
            code = int(digits, 16)
            start = base + i
            i += 6
            if 0xD800 <= code < 0xDC00:
                self._flush_high(out)
                self._high = (code, start)
            elif 0xDC00 <= code < 0xE000 and self._high is not None:
                high, high_start = self._high
                self._high = None
                char = chr(0x10000 + ((high - 0xD800) << 10) + (code - 0xDC00))
                out.append(Segment(char, high_start, base + i, self._strings - 1))
            elif 0xDC00 <= code < 0xE000:
                out.append(Segment(REPLACEMENT, start, base + i, self._strings - 1))
            else:
                self._flush_high(out)
                out.append(Segment(chr(code), start, base + i, self._strings - 1))
        self._buffer = text[i:]
        self._buffer_start = base + i
        return out

    def finish(self) -> list[Segment]:
        """End of the document: what is still pending is read as written."""
        out: list[Segment] = []
        self._flush_high(out)
        if self._buffer:
            out.append(Segment(self._buffer, self._buffer_start,
                               self._buffer_start + len(self._buffer), RAW))
            self._buffer_start += len(self._buffer)
            self._buffer = ""
        return out

    def _flush_high(self, out: list[Segment]) -> None:
        # A high surrogate not followed by a low one decodes to U+FFFD, as json.loads
        # would give a lone surrogate the scanner reads as U+FFFD anyway.
        if self._high is not None:
            _, start = self._high
            self._high = None
            out.append(Segment(REPLACEMENT, start, start + 6, self._strings - 1))
