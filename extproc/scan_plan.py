"""What to scan in one direction of an exchange, and what to do with each finding.

A workload's policy lists `{scanner, action}` pairs per direction (a
`deny-list` scanner also carries its `terms`). A `ScanPlan`
is those pairs compiled: one `Scanner` over the union of the scanners (so the
text is read once, whatever the number of scanners) and the action for each.
Plans are cached by their rules, so every exchange of a workload shares one.
`mode: audit` turns every action into `audit`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from extproc.scanner import Finding, Scanner, StreamScanner, deny_list
from mesh.policy import DENY_LIST, ScanRule

BLOCK, REDACT, AUDIT = "block", "redact", "audit"


@dataclass(frozen=True)
class ScanPlan:
    scanner: Scanner
    actions: Mapping[str, str]  # scanner name -> block | redact | audit

    def stream(self) -> StreamScanner:
        return self.scanner.stream(actions=self.actions)

    @property
    def observe_only(self) -> bool:
        """True when no action changes a byte: findings are only recorded."""
        return not any(action in (BLOCK, REDACT) for action in self.actions.values())

    def action_for(self, finding: Finding) -> str:
        return self.actions.get(finding.scanner, AUDIT)


def plan_for(rules: Sequence[ScanRule], *, enforcing: bool) -> ScanPlan | None:
    """The plan for a direction's rules; None when there is nothing to scan."""
    if not rules:
        return None
    return _plan(tuple(rules), enforcing)


@functools.lru_cache(maxsize=256)
def _plan(rules: tuple[ScanRule, ...], enforcing: bool) -> ScanPlan:
    actions = {rule.scanner: rule.action if enforcing else AUDIT for rule in rules}
    packs = [rule.scanner for rule in rules if rule.scanner != DENY_LIST]
    custom = [deny_list(rule.terms) for rule in rules if rule.scanner == DENY_LIST]
    return ScanPlan(Scanner.for_scanners(packs, extra=custom), actions)
