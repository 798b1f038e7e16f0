"""What to scan in one direction of an exchange, and what to do with each finding.

A workload's policy lists `{scanner, action}` pairs per direction (a
`deny-list` scanner also carries its `terms`). A `ScanPlan` is those pairs
compiled: one `Scanner` over the union of the scanners (so the text is read
once, whatever the number of scanners) and the action for each.
`mode: audit` turns every action into `audit`.

`compile_plans` builds the plans of every workload of a policy at once, when
the policy is loaded, never on the request path: a deny-list can take a second
to compile, and a rule set that cannot compile (a term that folds to nothing,
an automaton past the state limit) must refuse the policy, with the file, the
rule's path and the reason, while the previous policy stays in force.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from extproc.scanner import Finding, RuleError, Scanner, StreamScanner, deny_list
from extproc.scanner.dfa import MAX_STATES, AutomatonTooLarge
from extproc.scanner.normalize import OTHER, fold_text
from mesh.policy import DENY_LIST, Policy, PolicyError, ScanRule, WorkloadRule
from mesh.verdicts import Action

OTHER_CHAR = chr(OTHER)


@dataclass(frozen=True)
class ScanPlan:
    scanner: Scanner
    actions: Mapping[str, Action]  # scanner name -> block | redact | audit

    def stream(self) -> StreamScanner:
        return self.scanner.stream(actions=self.actions)

    @property
    def observe_only(self) -> bool:
        """True when no action changes a byte: findings are only recorded."""
        return not any(a in (Action.BLOCK, Action.REDACT) for a in self.actions.values())

    def action_for(self, finding: Finding) -> Action:
        return self.actions.get(finding.scanner, Action.AUDIT)


@dataclass(frozen=True)
class PolicyPlans:
    """The compiled plans of one policy, per workload name: (request, response)."""

    digest: str  # the policy these plans were compiled from
    by_workload: Mapping[str, tuple[ScanPlan | None, ScanPlan | None]]
    # The `mcp` section's plans (tool arguments, tool results and definitions).
    mcp_by_workload: Mapping[str, tuple[ScanPlan | None, ScanPlan | None]] = field(
        default_factory=dict
    )

    def request(self, workload: WorkloadRule | None) -> ScanPlan | None:
        return self.by_workload[workload.name][0] if workload is not None else None

    def response(self, workload: WorkloadRule | None) -> ScanPlan | None:
        return self.by_workload[workload.name][1] if workload is not None else None

    def mcp(self, workload: WorkloadRule | None) -> tuple[ScanPlan | None, ScanPlan | None]:
        """The workload's `mcp.request` and `mcp.response` plans."""
        if workload is None:
            return None, None
        return self.mcp_by_workload.get(workload.name, (None, None))


def compile_plans(policy: Policy) -> PolicyPlans:
    """Every workload's plans; a rule set that cannot compile is a `PolicyError`."""
    by_workload: dict[str, tuple[ScanPlan | None, ScanPlan | None]] = {}
    mcp: dict[str, tuple[ScanPlan | None, ScanPlan | None]] = {}
    for i, workload in enumerate(policy.workloads):
        here = f"workloads[{i}]"
        by_workload[workload.name] = (
            _compile(policy, f"{here}.request", workload.request),
            _compile(policy, f"{here}.response", workload.response),
        )
        tools = workload.tool_rules
        mcp[workload.name] = (
            _compile(policy, f"{here}.mcp.request", tools.request),
            _compile(policy, f"{here}.mcp.response", tools.response),
        )
    return PolicyPlans(policy.digest, by_workload, mcp)


def plan_for(rules: Sequence[ScanRule], *, enforcing: bool) -> ScanPlan | None:
    """The plan for one direction's rules, outside a policy; None when there is nothing
    to scan. A rule set that cannot compile raises `RuleError`."""
    if not rules:
        return None
    actions = {r.scanner: Action(r.action) if enforcing else Action.AUDIT for r in rules}
    packs = [r.scanner for r in rules if r.scanner != DENY_LIST]
    custom = [deny_list(r.terms) for r in rules if r.scanner == DENY_LIST]
    return ScanPlan(Scanner.for_scanners(packs, extra=custom), actions)


def _compile(policy: Policy, where: str, rules: Sequence[ScanRule]) -> ScanPlan | None:
    deny_at = next((j for j, r in enumerate(rules) if r.scanner == DENY_LIST), None)
    if deny_at is not None:
        problem = deny_list_problem(rules[deny_at].terms)
        if problem is not None:
            path, reason = problem
            raise PolicyError(policy.source, f"{where}[{deny_at}].terms{path}", reason)
    try:
        return plan_for(rules, enforcing=policy.enforcing)
    except RuleError as exc:
        # The deny-list fits on its own but not beside the packs of the same direction.
        path = f"{where}[{deny_at}].terms" if deny_at is not None else where
        raise PolicyError(policy.source, path, _rule_error_reason(exc, rules)) from None


def deny_list_problem(terms: Sequence[str]) -> tuple[str, str] | None:
    """(path suffix, reason) when these terms cannot compile; None when they can.

    Checked before compiling, and cheaply: a term that folds to nothing would match
    nothing (or everything), and a deny-list whose terms need more automaton states
    than the compiler allows would otherwise take seconds and hundreds of MB to find
    out. The anchored automaton of a set of literal words has one state per distinct
    prefix of the folded words (a trie), which the sort below counts exactly.
    """
    folded: list[str] = []
    for k, term in enumerate(terms):
        word = fold_text(term).strip()
        if not word:
            return (
                f"[{k}]",
                "the term has no visible characters once normalised (it is only "
                "zero-width, invisible or control characters), so it could never match",
            )
        if set(word) <= {OTHER_CHAR, " "}:
            return (
                f"[{k}]",
                "the term has no character the scanner reads (symbols, emoji and the "
                "scripts the scanner does not fold to their own letters all fold to one "
                "'other' class), so it would match any word of as many such characters",
            )
        folded.append(word)
    states = 2  # the dead state and the start state
    previous = ""
    for word in sorted(set(folded)):
        shared = 0
        for a, b in zip(previous, word, strict=False):
            if a != b:
                break
            shared += 1
        states += len(word) - shared
        previous = word
    if states > MAX_STATES:
        return (
            "",
            f"the terms need {states:,} automaton states (one per distinct prefix of the "
            f"normalised terms, plus two); the limit is {MAX_STATES:,}: use fewer or "
            "shorter terms",
        )
    return None


def _rule_error_reason(exc: RuleError, rules: Sequence[ScanRule]) -> str:
    names = ", ".join(r.scanner for r in rules)
    if isinstance(exc.__cause__, AutomatonTooLarge):
        return (
            f"the scanners of this direction ({names}) together need more than "
            f"{MAX_STATES:,} automaton states; use fewer or shorter deny-list terms"
        )
    return f"the scanners ({names}) cannot be compiled: {exc}"
