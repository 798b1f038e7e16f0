"""Scanning a JSON document as its reader sees it: decoded strings in, rewritten source out.

`JsonTextScan` has the interface of `StreamScanner` (``feed``/``finish`` on UTF-8
pieces, ``held_bytes``, ``text_of``, ``blocked``) and stands in for it on channels
whose text is a JSON document: tool-call arguments, Anthropic ``partial_json``, and
the same fields in request histories and whole responses. The source pieces go
through `JsonStringDecoder`; the decoded characters go through the scanner; and what
the scanner releases is turned back into *source* text:

- source up to the first decoded character still held is released verbatim (with the
  upstream's own escapes), so an unchanged document is byte-identical;
- a redacted span becomes ``[REDACTED:<rule>]`` in place of the source of its
  characters. When the span covers parts of several strings, the placeholder goes in
  the first and the others are emptied; the JSON structure between them is kept, so
  the result stays valid JSON whenever the input was;
- under ``block``, source up to the match's first character is released and nothing
  after it, as for plain text.

Findings' offsets are in decoded characters, as the scanner reports them.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Collection

from extproc.json_string_decoder import SEPARATOR, JsonStringDecoder, Segment
from extproc.scanner import Finding, StreamScanner
from extproc.scanner.stream import Release, placeholder


class JsonTextScan:
    """One JSON document's stream of source pieces, scanned in its decoded form."""

    def __init__(
        self, scanner: StreamScanner, hidden: Collection[str], blocking: Collection[str]
    ) -> None:
        self._scanner = scanner
        self._hidden = frozenset(hidden)  # scanners whose findings are replaced
        self._blocking = frozenset(blocking)
        self._decoder = JsonStringDecoder()
        self._source = ""  # source from offset _emitted on, not yet released
        self._emitted = 0
        self._segments: list[Segment] = []  # decoded segments from decoded offset _starts[0]
        self._starts: list[int] = []
        self._decoded = 0  # decoded characters so far
        self._done = 0  # decoded characters whose output went out
        self._fed = 0  # source bytes received
        self._changed = False  # a redaction rewrote source since the last `advance`

    @property
    def blocked(self) -> bool:
        return self._scanner.blocked

    @property
    def held_bytes(self) -> int:
        source = self._source
        return len(source) if source.isascii() else len(source.encode("utf-8", "surrogatepass"))

    def text_of(self, finding: Finding) -> str:
        return self._scanner.text_of(finding)

    def feed(self, chunk: bytes) -> tuple[bytes, list[Finding]]:
        if self._scanner.blocked:
            return b"", []
        self._fed += len(chunk)
        piece = chunk.decode("utf-8", "surrogatepass")
        self._source += piece
        return self._push(self._decoder.feed(piece), final=False)

    def finish(self) -> tuple[bytes, list[Finding]]:
        if self._scanner.blocked:
            return b"", []
        return self._push(self._decoder.finish(), final=True)

    def advance(self, data: bytes | memoryview, final: bool = False) -> Release:
        """`StreamScanner.advance` for a JSON channel: positions are in source bytes.

        The released source is verbatim (None) unless a redaction rewrote some of it.
        """
        chunk = data if isinstance(data, bytes) else bytes(data)
        self._changed = False
        out, found = self.feed(chunk) if chunk else (b"", [])
        if final:
            tail, more = self.finish()
            out, found = out + tail, found + more
        return Release(self._fed - self.held_bytes, found, out if self._changed else None)

    # -- internals ---------------------------------------------------------------

    def _push(self, segments: list[Segment], *, final: bool) -> tuple[bytes, list[Finding]]:
        for segment in segments:
            self._segments.append(segment)
            self._starts.append(self._decoded)
            self._decoded += len(segment.text)
        decoded = "".join(segment.text for segment in segments)
        _, found = self._scanner.push_text(decoded, final)
        out: list[str] = []
        for finding in found:
            if finding.scanner in self._blocking:
                self._verbatim(finding.start, out)
                break
            if finding.scanner not in self._hidden:
                continue  # audit only: its text goes out as it came
            if finding.start >= self._done:
                self._verbatim(finding.start, out)
                self._redact(finding.start, finding.end, placeholder(finding.rule), out)
            elif finding.end > self._done:
                # Overlaps a redaction already made: its rest disappears with it.
                self._redact(self._done, finding.end, None, out)
        else:
            self._verbatim(self._scanner.released_chars, out)
            if final:
                out.append(self._take(self._emitted + len(self._source)))
        self._trim()
        return "".join(out).encode("utf-8", "surrogatepass"), found

    def _source_offset(self, position: int) -> int:
        """The source offset where decoded character `position` begins."""
        if position >= self._decoded:
            return self._decoder.pending_start
        k = bisect_right(self._starts, position) - 1
        segment = self._segments[k]
        if segment.plain:
            return segment.source_start + (position - self._starts[k])
        return segment.source_start

    def _take(self, upto: int) -> str:
        cut = max(0, upto - self._emitted)
        piece, self._source = self._source[:cut], self._source[cut:]
        self._emitted += cut
        return piece

    def _verbatim(self, position: int, out: list[str]) -> None:
        if position > self._done:
            out.append(self._take(self._source_offset(position)))
            self._done = position

    def _redact(self, start: int, end: int, text: str | None, out: list[str]) -> None:
        """Replace decoded [start, end): `text` where the first string's part was."""
        self._changed = True
        k = max(0, bisect_right(self._starts, start) - 1)
        while k < len(self._segments) and self._starts[k] < end:
            segment, seg_start = self._segments[k], self._starts[k]
            k += 1
            lo, hi = max(start, seg_start), min(end, seg_start + len(segment.text))
            if lo >= hi or segment.string == SEPARATOR:
                continue
            if segment.plain:
                offset = segment.source_start - seg_start
                span = (offset + lo, offset + hi)
            else:
                span = (segment.source_start, segment.source_end)
            out.append(self._take(span[0]))  # the structure between strings stays
            if text is not None:
                out.append(text)
                text = None
            self._take(span[1])
        self._done = max(self._done, end)

    def _trim(self) -> None:
        # Forget segments wholly released; keep the one holding the release point.
        k = bisect_right(self._starts, self._done) - 1
        if k > 64:
            del self._segments[:k]
            del self._starts[:k]
