"""One matcher's running state: kernel calls, pending candidates, selection.

Owns the bridge between a compiled `Side` and its kernel. It keeps the
kernel's resumable arrays, turns kernel output into candidates, and
applies the match semantics documented in `rules`: leftmost, then
longest, then rule order, first validated candidate wins, no overlaps.

It also answers the question the stream's hold-back depends on: up to
which code point is everything this matcher will ever report already
known? That *frontier* is the start of the oldest live attempt that is not
inside an accepted match; text before it is final.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .compiler import Side
from .kernels import (
    CAND_COLS,
    R_START_CP,
    ST_NRUNS,
    ST_PREV,
    STATE_LEN,
    fold_match,
    match_finish,
    match_raw,
    step_tables,
)
from .normalize import fold_table
from .scoring import Scorer

Text = Callable[[int, int], str]


@dataclass(frozen=True, slots=True)
class Finding:
    """One match: which scanner and rule, and where (code-point offsets, end exclusive)."""

    scanner: str
    rule: str
    start: int
    end: int


def _chars(ascii_ok: np.ndarray) -> str:
    return "".join(chr(c) for c in range(128) if ascii_ok[c])


@dataclass(frozen=True)
class _Prepared:
    kernel: Any
    head: tuple[Any, ...]
    extends: np.ndarray
    ext_max: int
    ext_chars: str  # extension characters as strings: str.rstrip measures runs at C speed
    step: tuple[Any, ...]  # the tables as `kernels.stream_step` takes them
    rule_chars: list[str]


def _prepared(side: Side) -> _Prepared:
    hit = side.memo.get("prepared")
    if hit is not None:
        return hit  # type: ignore[no-any-return]
    t = side.tables
    tables = (t.trans, t.byte_class, t.start_state, t.acc_off, t.acc_rules, side.right_ok)
    # Most accepting rules in one state: bounds the candidates one symbol can add.
    max_acc = max(int(np.diff(t.acc_off).max(initial=0)), 1)
    limits = (side.rule_cap, side.forced, side.cap, max_acc)
    kernel: Any
    head: tuple[Any, ...]
    if side.normalized:
        kernel, head = fold_match, (fold_table(), *tables, *limits)
    else:
        kernel, head = match_raw, (*tables, *limits)
    ext_mask = np.asarray(side.extend.any(axis=0))[:128]
    step = step_tables(*tables, *limits, ext_mask)
    prepared = _Prepared(
        kernel=kernel,
        head=head,
        extends=np.array([r.extend is not None for r in side.rules], dtype=np.bool_),
        ext_max=max((r.extend_max for r in side.rules if r.extend is not None), default=0),
        ext_chars=_chars(ext_mask),
        step=(fold_table(), *step) if side.normalized else step,
        rule_chars=[_chars(side.extend[i]) for i in range(len(side.rules))],
    )
    # Two threads may both compute it; the result is the same, and either one stays.
    return side.memo.setdefault("prepared", prepared)  # type: ignore[no-any-return]


class MatchState:
    """Resumable matching over one side's tables."""

    def __init__(self, side: Side) -> None:
        self.side = side
        # Large but lazily committed (calloc): only rows that attempts use are touched.
        self.runs = np.zeros((side.max_runs, 3), dtype=np.int64)
        self.state = np.zeros(STATE_LEN, dtype=np.int64)
        self.state[ST_PREV] = 256
        self.out = np.zeros((256, CAND_COLS), dtype=np.int64)
        self.pending: list[tuple[int, int, int]] = []  # (start, end, rule), starts final
        self._fresh: list[tuple[int, int, int]] = []  # from the kernel, extensions unresolved
        self.cursor = 0  # code point where the last accepted match ended
        # Weak signals are selected in a lane of their own (they never hide a strong
        # match, nor it them) and feed the scorer instead of being reported.
        self._signal = [r.signal is not None for r in side.rules]
        groups, owners = Scorer.groups_of(side.rules)
        self.scorer = Scorer(groups, owners) if groups else None
        self.signal_cursor = 0
        self._table = fold_table() if side.normalized else None
        # Everything derived from the side alone is computed once per side, not per
        # stream: a guarded response opens a MatchState per channel.
        prepared = _prepared(side)
        self._kernel: Any = prepared.kernel
        self._head: tuple[Any, ...] = prepared.head
        self._extends = prepared.extends
        self._ext_max = prepared.ext_max
        self._ext_chars = prepared.ext_chars
        self.step = prepared.step
        self._rule_chars = prepared.rule_chars

    def feed(self, data: np.ndarray) -> None:
        """Run the kernel over complete UTF-8 `data`."""
        kernel, head, tail = self._kernel, self._head, (self.runs, self.state)
        done = 0
        n = data.shape[0]
        while done < n:
            used, k = kernel(data[done:] if done else data, *head, *tail, self.out)
            done += used
            if k:
                self._collect(k)
            elif used == 0:
                # Many live attempts at once: make room for their candidates.
                self.out = np.zeros((self.out.shape[0] * 4, CAND_COLS), dtype=np.int64)

    # -- for `kernels.stream_step`, which runs this state's kernel itself -------

    @property
    def ext_max(self) -> int:
        return self._ext_max

    def lane_cursor(self) -> int:
        """The cursor `_known` skips attempts before (the smaller of the two lanes')."""
        return self.cursor if self.scorer is None else min(self.cursor, self.signal_cursor)

    def idle(self) -> bool:
        """Nothing undecided: no candidate waits and no weak signal is held."""
        return not (self.pending or self._fresh or (self.scorer is not None and self.scorer.held))

    def tail_run(self, total_cp: int, text: Text) -> int:
        """The trailing run of extension characters `_known` holds back (capped)."""
        return self._ext_len(total_cp, text) if self._ext_max else 0

    def resume(self, data: np.ndarray, found: int, used: int) -> None:
        """Continue `feed` after one kernel call made elsewhere: `found` rows, `used` bytes."""
        if found:
            self._collect(found)
        if used < data.shape[0]:
            self.feed(data[used:])

    def finish(self) -> None:
        t = self.side.tables
        nruns = int(self.state[ST_NRUNS])
        max_acc = int(np.diff(t.acc_off).max(initial=1))
        if self.out.shape[0] < nruns * max_acc + 1:
            self.out = np.zeros((nruns * max_acc + 1, CAND_COLS), dtype=np.int64)
        n = match_finish(
            t.acc_off, t.acc_rules, self.side.rule_cap, self.side.normalized, self.runs,
            self.state, self.out,
        )  # fmt: skip
        if n:
            self._collect(n)

    def candidates(self, text: Text) -> list[tuple[int, int, int]]:
        """Every undecided candidate as (start, end, rule index), real starts resolved."""
        self._resolve(text)
        return list(self.pending)

    def _resolve(self, text: Text) -> None:
        """Move fresh candidates to `pending`, giving extending rules their real start."""
        fresh, self._fresh = self._fresh, []
        if not self._ext_max:
            self.pending.extend(fresh)
            return
        for start, end, r in fresh:
            if self._extends[r]:
                real = self._extended_start(r, start, text)
                if real is None:
                    continue
                start = real
            self.pending.append((start, end, r))

    def _collect(self, n: int) -> None:
        rows = self.out[:n, 2:5].tolist()
        self._fresh.extend((r[0], r[1], r[2]) for r in rows)

    def frontier(self, total_cp: int, text: Text, final: bool = False) -> int:
        """Everything this matcher reports that starts before this code point is known."""
        known = self._known(total_cp, text, final)
        if self.scorer is None or not self.scorer.held:
            return known
        # A scored finding starts at its run's first signal: hold from there.
        return min(known, self.scorer.hold(known))

    def _known(self, total_cp: int, text: Text, final: bool) -> int:
        """Every candidate starting before this code point has come out of the kernel."""
        nruns = int(self.state[ST_NRUNS])
        best = total_cp
        cursor = self.cursor if self.scorer is None else min(self.cursor, self.signal_cursor)
        if nruns:
            runs = self.runs
            k = 0
            if int(runs[0, R_START_CP]) < cursor:
                # Attempts inside an accepted match can never be reported; skip them.
                k = int(np.searchsorted(runs[:nruns, R_START_CP], cursor, side="left"))
            if k < nruns:
                best = int(runs[k, R_START_CP])
                if self._ext_max:
                    # An attempt at an anchor may still grow leftwards over extension
                    # characters; later attempts can reach further back than the first.
                    for i in range(k, nruns):
                        p = int(runs[i, R_START_CP])
                        if p - self._ext_max >= best:
                            break
                        best = min(best, max(cursor, p - self._ext_len(p, text)))
        if self._ext_max and not final:
            # A trailing run of extension characters may precede an anchor yet to come.
            best = min(best, max(cursor, total_cp - self._ext_len(total_cp, text)))
        return best

    def _ext_len(self, p: int, text: Text) -> int:
        before = text(max(0, p - self._ext_max), p)
        return len(before) - len(before.rstrip(self._ext_chars))

    def _extended_start(self, r: int, start: int, text: Text) -> int | None:
        """The real start of a candidate of rule `r` whose pattern starts at `start`."""
        rule = self.side.rules[r]
        before = text(max(0, start - rule.extend_max - 1), start)
        n = len(before) - len(before.rstrip(self._rule_chars[r]))
        if not rule.extend_min <= n <= rule.extend_max:
            return None
        if n < len(before):
            prev = before[len(before) - n - 1].encode("utf-8", "surrogatepass")[-1]
        else:
            prev = 256  # start of text
        return start - n if self.side.left_ok[r, prev] else None

    def select(self, total_cp: int, text: Text, final: bool = False) -> list[Finding]:
        """Decide every candidate that starts before the frontier; return the findings."""
        found: list[Finding] = []
        self._resolve(text)
        signal, scorer = self._signal, self.scorer
        while self.pending:
            limit = self._known(total_cp, text, final)
            ready = [c for c in self.pending if c[0] < limit]
            if not ready:
                break
            self.pending = [c for c in self.pending if c[0] >= limit]
            ready.sort(key=lambda c: (c[0], -c[1], c[2]))
            for start, end, r in ready:
                weak = signal[r]
                if start < (self.signal_cursor if weak else self.cursor):
                    continue
                validator = self.side.validators[r]
                if validator is not None:
                    span = validator(text(start, end))
                    if span is None:
                        continue
                    if span[0] >= span[1]:  # validators.SUPPRESS: harmless, but consumes
                        if weak:
                            self.signal_cursor = end
                        else:
                            self.cursor = end
                        continue
                    s, e = start + span[0], start + span[1]
                else:
                    s, e = start, end
                rule = self.side.rules[r]
                if weak:
                    self.signal_cursor = end
                    assert scorer is not None
                    scored = scorer.push(rule, s, e)
                    if scored is not None:
                        found.append(Finding(*scored))
                    continue
                found.append(Finding(rule.scanner, rule.id, s, e))
                # A span the validator narrowed at its end leaves the rest to later matches
                # (the second of two cards written in one run).
                self.cursor = e
        if scorer is not None and scorer.held:
            if final:
                scorer.clear()
            else:
                scorer.expire(self._known(total_cp, text, final))
        return found
