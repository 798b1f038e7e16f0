"""One input (a file or standard input) scanned in blocks, with positions people can use.

Owns what `weir scan` needs beyond the scanner itself:

* **blockwise reading.** The input is read `BLOCK_BYTES` at a time and fed
  to a `StreamScanner`, so memory stays bounded by the block, the scanner's
  hold-back and one block's findings, whatever the input's size. Findings
  are yielded as soon as the scanner reports them.
* **decoding.** Bytes that are not UTF-8 are decoded with `surrogateescape`
  (one code point per invalid byte), so that positions map back to the exact
  bytes of the file. The scanner sees each of them as U+FFFD, the same one
  code point, and the input is counted as not UTF-8 (`invalid_bytes`).
* **positions.** Each finding gets its 1-based line and column (counted in
  code points, after the last `\\n`), its byte offset and byte length in the
  original input, and a keyed hash of the matched text (`audit.match_hash`).
  The matched text itself never leaves this module.

Only the text from shortly before the scanner's release point is kept:
nothing before that point can start a later finding (see
`stream.StreamScanner`), except one overlapping a finding just released,
which starts at most one longest match earlier.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from extproc.audit import match_hash

from .matcher import Finding
from .scanner import Scanner
from .stream import StreamScanner

BLOCK_BYTES = 1 << 20
REPLACEMENT = "\ufffd"
# surrogateescape turns an invalid byte 0xNN into the lone surrogate U+DCNN.
_ESCAPED = re.compile("[\udc80-\udcff]")
_TO_REPLACEMENT = {cp: REPLACEMENT for cp in range(0xDC80, 0xDD00)}


@dataclass(frozen=True, slots=True)
class LocatedFinding:
    """One finding in one input: where it is and what matched it, never the match."""

    scanner: str
    rule: str
    line: int  # 1-based
    column: int  # 1-based, in code points
    end_line: int
    end_column: int  # 1-based, exclusive
    byte_offset: int  # 0-based, in the original bytes
    byte_length: int
    start: int  # code-point offsets into the decoded input, end exclusive
    end: int
    hash: str  # keyed hash of the matched text (see extproc.audit)


class NotUtf8Error(Exception):
    """Raised with `strict_utf8` at the first byte that is not UTF-8."""

    def __init__(self, byte_offset: int) -> None:
        super().__init__(f"not valid UTF-8 at byte offset {byte_offset}")
        self.byte_offset = byte_offset


class _Cursor:
    """Line, column and byte offset at a code point, moved forward through kept text.

    Moves are by index into the kept text, so that locating many findings in one
    block costs the text between them, not the block each time.
    """

    def __init__(self) -> None:
        self.cp = 0  # code point the cursor stands on
        self.byte = 0
        self.line = 1
        self.line_start = 0  # code point where the current line starts
        self.text = ""  # the (surrogateescaped) text kept, `text[off]` is at `cp`
        self.off = 0

    def append(self, text: str) -> None:
        if self.off > len(self.text) // 2:
            self.text, self.off = self.text[self.off :], 0
        self.text += text

    def _measure(self, to: int) -> tuple[int, int, int]:
        if to < self.cp:
            raise RuntimeError(f"position {to} is before the kept text at {self.cp}")
        i, j = self.off, self.off + (to - self.cp)
        line, line_start = self.line, self.line_start
        newlines = self.text.count("\n", i, j)
        if newlines:
            line += newlines
            line_start = self.cp + (self.text.rindex("\n", i, j) - i) + 1
        return line, line_start, self.byte + len(self.text[i:j].encode("utf-8", "surrogateescape"))

    def advance(self, to: int) -> None:
        self.line, self.line_start, self.byte = self._measure(to)
        self.off += to - self.cp
        self.cp = to

    def peek(self, to: int) -> tuple[int, int, int]:
        """(line, column, byte offset) at code point `to` >= cp, without moving."""
        line, line_start, byte = self._measure(to)
        return line, to - line_start + 1, byte


class FileScan:
    """Scan one binary stream; iterate for its findings, then read `invalid_bytes`."""

    def __init__(
        self,
        scanner: Scanner,
        source: BinaryIO,
        *,
        strict_utf8: bool = False,
        block_bytes: int = BLOCK_BYTES,
    ) -> None:
        self._scanner = scanner
        self._source = source
        self._strict = strict_utf8
        self._block = block_bytes
        self.invalid_bytes = 0
        self.first_invalid_offset: int | None = None
        self.bytes_read = 0

    def __iter__(self) -> Iterator[LocatedFinding]:
        stream = self._scanner.stream(redact=False)
        # A finding reported later may overlap one released now, but never starts
        # more than the longest match before the release point.
        margin = stream.max_hold_bytes
        decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
        cursor = _Cursor()
        released = 0
        decoded_bytes = 0  # bytes of the input that `decoded` text so far stands for
        while True:
            block = self._source.read(self._block)
            final = not block
            text = decoder.decode(block, final=final)
            self.bytes_read += len(block)
            if _ESCAPED.search(text):
                self._note_invalid(text, decoded_bytes)
                scanned = text.translate(_TO_REPLACEMENT)
            else:
                scanned = text
            decoded_bytes = self.bytes_read - len(decoder.getstate()[0])
            cursor.append(text)
            out, found = stream.push_text(scanned, final=final)
            for f in found:  # ordered by start; later findings start after these
                cursor.advance(max(cursor.cp, f.start))
                yield self._locate(f, stream, cursor)
            released += len(out)
            cursor.advance(max(cursor.cp, released - margin))
            if final:
                return

    def _locate(self, f: Finding, stream: StreamScanner, cursor: _Cursor) -> LocatedFinding:
        line, column, byte = cursor.peek(f.start)
        end_line, end_column, end_byte = cursor.peek(f.end)
        return LocatedFinding(
            scanner=f.scanner,
            rule=f.rule,
            line=line,
            column=column,
            end_line=end_line,
            end_column=end_column,
            byte_offset=byte,
            byte_length=end_byte - byte,
            start=f.start,
            end=f.end,
            hash=match_hash(stream.text_of(f)),
        )

    def _note_invalid(self, text: str, decoded_bytes: int) -> None:
        escaped = _ESCAPED.findall(text)
        if self.first_invalid_offset is None:
            first = _ESCAPED.search(text)
            assert first is not None
            offset = decoded_bytes + len(text[: first.start()].encode("utf-8", "surrogateescape"))
            self.first_invalid_offset = offset
            if self._strict:
                raise NotUtf8Error(offset)
        self.invalid_bytes += len(escaped)


def redact_to(
    scanner: Scanner,
    source: BinaryIO,
    sink: BinaryIO,
    *,
    strict_utf8: bool = False,
    block_bytes: int = BLOCK_BYTES,
) -> int:
    """Copy `source` to `sink` with every finding replaced by `[REDACTED:<rule>]`, blockwise.

    Returns the number of findings. Invalid UTF-8 bytes come out as U+FFFD,
    or with `strict_utf8` raise `NotUtf8Error` (what was released so far is written).
    """
    stream = scanner.stream()
    check = codecs.getincrementaldecoder("utf-8")()
    seen = 0
    count = 0
    while True:
        block = source.read(block_bytes)
        if strict_utf8:
            try:
                check.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                raise NotUtf8Error(seen - len(check.getstate()[0]) + exc.start) from None
            seen += len(block)
        out, found = stream.feed(block) if block else stream.finish()
        count += len(found)
        sink.write(out)
        if not block:
            return count
