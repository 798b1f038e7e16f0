"""Streaming state: chunks in, releasable redacted bytes and findings out.

Owns `StreamScanner`, the object the ext_proc response pipeline keeps per
exchange. It decodes UTF-8 incrementally (a character split across chunks
is simply waited for; invalid bytes become U+FFFD, as
`bytes.decode(errors="replace")` would), feeds both matchers, and releases
text as soon as it is final:

* the release point is the smallest *frontier* of the two matchers (see
  `matcher`), i.e. the start of the oldest match attempt still alive;
  nothing before it can ever become part of a new finding;
* findings that start before it are reported at once, in order, and their
  text is replaced by `[REDACTED:<rule>]`; overlapping findings of the two
  sides merge into one redaction named after the first;
* bytes after it are held. The hold is at most the longest rule (`cap`
  bytes on the raw side, four bytes per code point of the normalised side)
  plus an incomplete UTF-8 sequence, which is `max_hold_bytes`.

Two entries: `feed` (bytes in, released bytes out) and `advance`, for a caller that
keeps its own copy of the input (the SSE guard holds each event's bytes): the kernels
read the given bytes (or uint8 array) as they are, and the answer (`Release`) is the
release point in that input, the findings, and output text only when it differs from
the input. A clean token then costs no decode-encode round trip of its text.

A call on a quiet stream (nothing waiting to be decided) is one compiled step over
both sides (`kernels.stream_step`); the Python code below takes over, from where the
kernels stopped, whenever there is a candidate or anything rarer, and stays the
definition of correct.

The offline `Scanner.scan` runs this very class over one chunk, so the two
paths cannot drift apart; the property tests check it anyway.
"""

from __future__ import annotations

import codecs
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

from .compiler import CompiledRules
from .kernels import (
    CTL_LEN,
    K_CURSOR,
    K_EXT_MAX,
    K_FOUND,
    K_TAIL,
    K_TOTAL,
    K_USED,
    STEP_INVALID,
    STEP_PYTHON,
    stream_step,
)
from .matcher import Finding, MatchState

# Below this size a thread hand-off costs more than it saves.
_PARALLEL_BYTES = 128 * 1024
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="weir-scan")
        return _executor


_HIDING = frozenset({"redact", "block"})


def placeholder(rule_id: str) -> str:
    return f"[REDACTED:{rule_id}]"


class Release(NamedTuple):
    """What one `StreamScanner.advance` call decided, in the caller's own coordinates.

    ``upto`` is the release point: the number of input bytes (counted from the start of
    the stream) whose output may now go out; it never moves back. ``text`` is the
    output for the input newly released by this call when it differs from that input
    (a redaction, or invalid UTF-8 read as U+FFFD); None means the output *is* those
    input bytes, so a caller holding them can forward its own copy. ``findings`` are as
    from `feed`. A NamedTuple: one per token, and cheap.
    """

    upto: int
    findings: list[Finding]
    text: bytes | None


class StreamScanner:
    """Incremental scanner for one stream. Not thread-safe; one per exchange."""

    def __init__(
        self,
        compiled: CompiledRules,
        redact: bool = True,
        actions: Mapping[str, str] | None = None,
    ) -> None:
        self._compiled = compiled
        self._redact = redact
        # With a policy's actions, only findings of "redact"/"block" scanners are replaced;
        # "audit" ones (and scanners the policy does not name) pass through unchanged.
        self._hidden = None if actions is None else {k for k, v in actions.items() if v in _HIDING}
        # A "block" finding ends the stream: nothing from its start on is ever released.
        self._blocking = frozenset(k for k, v in (actions or {}).items() if v == "block")
        # Scanners whose findings change the released text (None: every one). A block
        # finding does not: the output stops before it.
        self._hiding: frozenset[str] | None
        if not redact:
            self._hiding = frozenset()
        elif self._hidden is None:
            self._hiding = None
        else:
            self._hiding = frozenset(self._hidden - self._blocking)
        self._blocked = False
        self._raw = MatchState(compiled.raw) if compiled.raw else None
        self._fold = MatchState(compiled.folded) if compiled.folded else None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._text = ""  # decoded text from code point `_base` to `_total`
        self._base = 0
        self._total = 0
        self._out = 0  # code point up to which output has been released
        self._waiting: list[Finding] = []  # decided, but start is past the release point
        self._in_bytes = 0  # input bytes received by feed/advance
        self._upto = 0  # the last release point `advance` reported
        self._lossy = False  # invalid UTF-8 was read (as U+FFFD): positions are bounds
        self._finished = False
        self._early: list[Finding] | None = None  # raw findings decided during a parallel scan
        self._lookback = 1 + max(
            (r.extend_max for r in compiled.rules if r.extend is not None), default=0
        )
        # The compiled step (`_step`) for both sides at once; `_ctl` mirrors the state it
        # reads, valid while `_synced` (every `_push` clears it).
        self._ctl = np.zeros(CTL_LEN, dtype=np.int64)
        self._synced = False
        self._quiet = False
        self._quick = self._raw is not None and self._fold is not None
        self._args: tuple[object, ...] = ()
        if self._raw is not None and self._fold is not None:
            self._ctl[K_EXT_MAX] = self._raw.ext_max
            self._ctl[K_EXT_MAX + 1] = self._fold.ext_max

    # -- public API ---------------------------------------------------------

    @property
    def blocked(self) -> bool:
        """True once a finding of a "block" scanner was reported; nothing more is released."""
        return self._blocked

    def feed(self, chunk: bytes) -> tuple[bytes, list[Finding]]:
        """Scan the next chunk; return the bytes that may be released and new findings."""
        if self._finished:
            raise RuntimeError("feed() after finish()")
        if self._blocked:
            return b"", []
        if self._quick and 0 < len(chunk) < _PARALLEL_BYTES:
            if not self._synced:
                self._sync()
            if self._quiet:
                stepped = self._step(chunk, chunk, want=True)
                if stepped is not None:
                    return stepped[0].encode("utf-8", "surrogatepass"), stepped[1]
        self._in_bytes += len(chunk)
        text, found = self._push(self._decoder.decode(chunk), final=False)
        return text.encode("utf-8", "surrogatepass"), found

    def advance(self, data: bytes | memoryview | np.ndarray, final: bool = False) -> Release:
        """Scan the next input bytes (``final``: then end the stream) without a text round trip.

        The entry for a caller that already holds the bytes (the SSE guard keeps each
        event's original bytes): the kernels read `data` as given, no output text is
        built when nothing changes, and the answer is a position in the caller's input.
        Equal to `feed`/`finish` on any split: same findings, and the released output is
        the input up to ``upto`` with every ``text`` put in place of its range. Once
        invalid UTF-8 was read (as U+FFFD, like `feed`), every answer carries its text
        and ``upto`` is a lower bound: a replacement character is not the bytes it
        stands for.
        """
        if self._finished:
            raise RuntimeError("advance() after finish()")
        if self._blocked:
            # Nothing is released once blocked: the release point stays where it stopped.
            self._finished = self._finished or final
            return Release(self._upto, [], None)
        raw = data if isinstance(data, bytes) else bytes(data)
        if self._quick and not final and 0 < len(raw) < _PARALLEL_BYTES:
            if not self._synced:
                self._sync()
            if self._quiet:
                stepped = self._step(raw, data, want=False)
                if stepped is not None:
                    return self._answer(*stepped)
        self._in_bytes += len(raw)
        text: str | None = None
        if raw and not self._decoder.getstate()[0]:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        if text is not None:
            array = (
                data if isinstance(data, np.ndarray) else np.frombuffer(raw, dtype=np.uint8)
            )
            if final:
                self._decoder.decode(b"", final=True)
            out, found = self._push(text, final, data=array, want=self._lossy)
        else:
            decoded = self._decoder.decode(raw, final=final)
            # A replacement character may stand for bytes that were not one: from here on
            # the output is never the input, and positions are only lower bounds.
            self._lossy = self._lossy or "\ufffd" in decoded
            out, found = self._push(decoded, final, want=True)
        return self._answer(out, found)

    def _answer(self, out: str, found: list[Finding]) -> Release:
        if not found and not self._lossy:
            # The common answer, cheaply: `held_bytes` inline, and no text.
            held = self._text[self._out - self._base :] if self._out >= self._base else self._text
            size = len(held) if held.isascii() else len(held.encode("utf-8", "surrogatepass"))
            upto = self._in_bytes - size - len(self._decoder.getstate()[0])
            if upto > self._upto:
                self._upto = upto
            return Release(self._upto, found, None)
        upto = self._upto = max(self._upto, self._released_bytes())
        if not self._lossy and not any(self._changes(f) for f in found):
            return Release(upto, found, None)
        return Release(upto, found, out.encode("utf-8", "surrogatepass"))

    def _sync(self) -> None:
        """Bring `_ctl` in step with the Python state, and say whether `_step` may run."""
        raw, fold = self._raw, self._fold
        assert raw is not None and fold is not None
        ctl = self._ctl
        ctl[K_TOTAL] = self._total
        for side, m in enumerate((raw, fold)):
            ctl[K_CURSOR + side] = m.lane_cursor()
            ctl[K_TAIL + side] = m.tail_run(self._total, self._slice)
        # The step's arguments after the input: `out` arrays are replaced when they grow.
        self._args = (*raw.step, raw.runs, raw.state, raw.out, *fold.step, fold.runs,
                      fold.state, fold.out, ctl)  # fmt: skip
        self._quiet = not (
            self._waiting or self._early or self._lossy or self._blocked or self._finished
            or self._decoder.getstate()[0]
        ) and raw.idle() and fold.idle()  # fmt: skip
        self._synced = True

    def _step(
        self, raw: bytes, data: bytes | memoryview | np.ndarray, want: bool
    ) -> tuple[str, list[Finding]] | None:
        """`_push` of a quiet stream in one compiled call; None if `raw` is not UTF-8.

        Quiet: nothing waits to be decided, so when the kernels find no candidate the
        answer is only a new release point, which `stream_step` computes as `_release`
        would. Anything else goes on in the Python code, from where the kernels stopped.
        Returns what `_push` would: the released text (with `want`, else "") and findings.
        """
        array = data if isinstance(data, np.ndarray) else np.frombuffer(raw, dtype=np.uint8)
        ctl = self._ctl
        limit = stream_step(array, *self._args)  # type: ignore[call-arg]
        if limit == STEP_INVALID:
            return None
        self._in_bytes += len(raw)
        text = raw.decode("utf-8")
        if limit == STEP_PYTHON:
            fed = (
                (int(ctl[K_FOUND]), int(ctl[K_USED])),
                (int(ctl[K_FOUND + 1]), int(ctl[K_USED + 1])),
            )
            return self._push(text, False, data=array, want=want, fed=fed)
        self._text += text
        self._total += len(text)
        piece = ""
        if limit > self._out:
            if want:
                piece = self._slice(self._out, limit)
            self._out = limit
            self._trim(limit)
        return piece, []

    def _changes(self, finding: Finding) -> bool:
        if finding.scanner in self._blocking:
            return False
        return self._hiding is None or finding.scanner in self._hiding

    def _released_bytes(self) -> int:
        return self._in_bytes - self.held_bytes

    def finish(self) -> tuple[bytes, list[Finding]]:
        """End of stream: flush everything held and report the last findings."""
        if self._finished or self._blocked:
            self._finished = True
            return b"", []
        text, found = self._push(self._decoder.decode(b"", final=True), final=True)
        return text.encode("utf-8", "surrogatepass"), found

    def text_of(self, finding: Finding) -> str:
        """The original text of a finding from the latest `feed`/`finish` (for audit hashes)."""
        if finding.start < self._base or finding.end > self._total:
            raise ValueError("finding text is no longer held; ask right after feed()/finish()")
        return self._slice(finding.start, finding.end)

    @property
    def released_chars(self) -> int:
        """Code points of input whose output has been released (redactions included)."""
        return self._out

    @property
    def held_bytes(self) -> int:
        """Bytes received but not yet released (including an incomplete character)."""
        held = self._text[self._out - self._base :] if self._out >= self._base else self._text
        pending = self._decoder.getstate()[0]
        # str.isascii is O(1) in CPython: most held text costs no encode.
        size = len(held) if held.isascii() else len(held.encode("utf-8", "surrogatepass"))
        return size + len(pending)

    @property
    def max_hold_bytes(self) -> int:
        """Upper bound of `held_bytes` for this rule set."""
        raw = 0
        if self._compiled.raw:
            raw = max(r.cap + (r.extend_max if r.extend else 0) for r in self._compiled.raw.rules)
        fold = 0
        if self._compiled.folded:
            # A run of weak signals is held while a later one may still join it.
            window = max(
                (r.signal.window for r in self._compiled.folded.rules if r.signal), default=0
            )
            fold = 4 * (self._compiled.folded.cap + window)
        return max(raw, fold) + 3

    # -- internals ------------------------------------------------------------

    def push_text(self, text: str, final: bool) -> tuple[str, list[Finding]]:
        """Feed already-decoded text (the offline path); returns released text."""
        return self._push(text, final)

    def _push(
        self,
        text: str,
        final: bool,
        *,
        data: np.ndarray | None = None,
        want: bool = True,
        fed: tuple[tuple[int, int], tuple[int, int]] | None = None,
    ) -> tuple[str, list[Finding]]:
        if data is None:
            data = np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)
        self._text += text
        self._total += len(text)
        self._finished = final
        self._synced = False
        if fed is not None:
            # `_step` made each side's first kernel call: go on from where it stopped.
            assert self._raw is not None and self._fold is not None
            self._raw.resume(data, *fed[0])
            self._fold.resume(data, *fed[1])
        elif self._raw is not None and self._fold is not None and len(data) >= _PARALLEL_BYTES:
            # Both kernels release the GIL: on a large text run the two sides at once,
            # and decide the raw side's candidates while the other kernel still runs.
            other = _pool().submit(self._fold.feed, data)
            self._raw.feed(data)
            if final:
                self._raw.finish()
                self._early = self._raw.select(self._total, self._slice, True)
            other.result()
        else:
            for m in (self._raw, self._fold):
                if m is not None and text:
                    m.feed(data)
        if final:
            for m in (self._raw, self._fold):
                if m is not None and not (m is self._raw and self._early is not None):
                    m.finish()
        return self._release(want)

    def _slice(self, start: int, end: int) -> str:
        return self._text[max(start - self._base, 0) : max(end - self._base, 0)]

    def _release(self, want: bool = True) -> tuple[str, list[Finding]]:
        found: list[Finding] = self._waiting
        if self._early:
            found = found + self._early
        self._early = None
        limit = self._total
        for m in (self._raw, self._fold):
            if m is not None:
                new = m.select(self._total, self._slice, self._finished)
                if new:
                    found = found + new
                limit = min(limit, m.frontier(self._total, self._slice, self._finished))
        out = self._out
        if not found:
            # The common case: nothing found, release up to the limit.
            if out >= limit:
                return "", []
            # `advance` needs no text when nothing changes: it only moves the release point.
            piece = self._slice(out, limit) if want else ""
            self._out = limit
            self._trim(limit)
            return piece, []
        found.sort(key=lambda f: (f.start, -f.end, f.scanner, f.rule))
        if self._finished:
            ready, self._waiting = found, []
        else:
            ready = [f for f in found if f.start < limit]
            self._waiting = [f for f in found if f.start >= limit]
        pieces: list[str] = []
        hidden = self._hidden
        for index, f in enumerate(ready):
            if f.scanner in self._blocking:
                # Release only what precedes the match, report findings up to this one.
                if f.start > out:
                    pieces.append(self._slice(out, f.start))
                    out = f.start
                self._out = out
                self._blocked = True
                self._waiting = []
                return "".join(pieces), ready[: index + 1]
            if hidden is not None and f.scanner not in hidden:
                continue  # audit only: report it, release its text as is
            if f.start >= out:
                pieces.append(self._slice(out, f.start))
                pieces.append(placeholder(f.rule) if self._redact else self._slice(f.start, f.end))
                out = f.end
            elif f.end > out:
                # Overlaps a redaction already emitted: swallow the rest silently.
                if not self._redact:
                    pieces.append(self._slice(out, f.end))
                out = f.end
        if out < limit:
            pieces.append(self._slice(out, limit))
            out = limit
        self._out = out
        # Findings just reported stay readable through text_of() until the next call.
        self._trim(min(out, limit, min(f.start for f in ready) if ready else limit))
        return "".join(pieces), ready

    def _trim(self, upto: int) -> None:
        # Keep what later candidates may still read: from the release point, plus
        # the characters an extending rule may look back over.
        keep = upto - self._lookback
        if keep > self._base + 4096 or (keep > self._base and len(self._text) > 65536):
            self._text = self._text[keep - self._base :]
            self._base = keep
