"""What to scan in one direction of an exchange, and what to do with each finding.

A workload's policy lists `{scanner, action}` pairs per direction. A `ScanPlan`
is those pairs compiled: one `Scanner` over the union of the scanners (so the
text is read once, whatever the number of scanners) and the action for each.
Plans are cached by their rules, so every exchange of a workload shares one.
`mode: audit` turns every action into `audit`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from extproc.scanner import Finding, Scanner, StreamScanner
from mesh.policy import ScanRule

BLOCK, REDACT, AUDIT = "block", "redact", "audit"


@dataclass(frozen=True)
class ScanPlan:
    scanner: Scanner
    actions: Mapping[str, str]  # scanner name -> block | redact | audit

    def stream(self) -> StreamScanner:
        return self.scanner.stream(actions=self.actions)

    def action_for(self, finding: Finding) -> str:
        return self.actions.get(finding.scanner, AUDIT)


def plan_for(rules: Sequence[ScanRule], *, enforcing: bool) -> ScanPlan | None:
    """The plan for a direction's rules; None when there is nothing to scan."""
    if not rules:
        return None
    return _plan(tuple((rule.scanner, rule.action) for rule in rules), enforcing)


@functools.lru_cache(maxsize=256)
def _plan(pairs: tuple[tuple[str, str], ...], enforcing: bool) -> ScanPlan:
    actions = {scanner: action if enforcing else AUDIT for scanner, action in pairs}
    return ScanPlan(Scanner.for_scanners(actions), actions)
