"""Scoring of weak signals: several co-occurring hints become one finding.

Owns `Scorer`, the sans-I/O state that turns a matcher's decided signal
matches (rules with a `rules.Signal`) into scored findings. Signals arrive
in order of start, non-overlapping (they are selected like any other
rule, in a lane of their own so they never hide a strong match). For each
group the scorer keeps the signals of the current run: a new signal joins
the run when the span from the run's first start to its own end fits in
the group's window, otherwise the oldest signals leave until it does. When
the weights of the distinct rules in the run reach the threshold, the run
from its first start to the new signal's end is reported under the group's
id and the run starts afresh.

The result depends only on the sequence of signals, never on when they
arrive, so it is the same for every split of the text. What the stream
must hold back for it is `hold`: the start of the oldest signal that a
signal not yet decided could still join.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from .rules import Rule, RuleError, Signal


@dataclass(frozen=True, slots=True)
class _Hit:
    start: int
    end: int
    rule: str
    weight: int


class Scorer:
    """Running scores of every signal group of one matcher side."""

    def __init__(self, groups: dict[str, Signal], scanner: dict[str, str]) -> None:
        self._groups = groups
        self._scanner = scanner
        self._runs: dict[str, deque[_Hit]] = {g: deque() for g in groups}
        # Signals held in all runs: a stream asks on every chunk, mostly when there are none.
        self.held = 0

    @staticmethod
    def groups_of(rules: Sequence[Rule]) -> tuple[dict[str, Signal], dict[str, str]]:
        """The groups a side's rules define, checked for one window and threshold each."""
        groups: dict[str, Signal] = {}
        scanner: dict[str, str] = {}
        for r in rules:
            sig = r.signal
            if sig is None:
                continue
            known = groups.get(sig.group)
            if known is not None and (known.window, known.threshold) != (sig.window, sig.threshold):
                raise RuleError(
                    f"rule {r.id!r}: group {sig.group!r} has one window and threshold for all"
                )
            groups.setdefault(sig.group, sig)
            scanner.setdefault(sig.group, r.scanner)
        return groups, scanner

    def push(self, rule: Rule, start: int, end: int) -> tuple[str, str, int, int] | None:
        """Add a decided signal; return (scanner, group, start, end) when its run scores."""
        sig = rule.signal
        assert sig is not None
        run = self._runs[sig.group]
        while run and end - run[0].start > sig.window:
            run.popleft()
            self.held -= 1
        run.append(_Hit(start, end, rule.id, sig.weight))
        self.held += 1
        best: dict[str, int] = {}
        for h in run:
            best[h.rule] = max(best.get(h.rule, 0), h.weight)
        if sum(best.values()) < sig.threshold:
            return None
        first = run[0].start
        self.held -= len(run)
        run.clear()
        return self._scanner[sig.group], sig.group, first, end

    def expire(self, known: int) -> None:
        """Every signal starting before `known` is decided: drop what nothing can join."""
        for group, run in self._runs.items():
            window = self._groups[group].window
            # A later signal ends after `known`, so it cannot share a window with these.
            while run and known + 1 - run[0].start > window:
                run.popleft()
                self.held -= 1

    def hold(self, default: int) -> int:
        """The oldest signal start a future signal could still join (or `default`)."""
        starts = [run[0].start for run in self._runs.values() if run]
        return min(starts, default=default)

    def clear(self) -> None:
        for run in self._runs.values():
            run.clear()
        self.held = 0
