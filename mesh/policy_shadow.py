"""Shadowed workload rules: rules that no identity can reach.

Workloads are tried in order and the first whose identity patterns match
decides. A later rule every one of whose identities is already matched by
an earlier rule is dead: it never decides anything, and its author almost
surely meant something else. This module finds such rules.

The question is language inclusion: is every valid SPIFFE ID that pattern
`p` matches also matched by one of the earlier patterns `q1..qn`? Globs have
one wildcard, `*` (any run of characters, '/' included), so each is a tiny
NFA and the question is decided **exactly** by a breadth-first search over
the product of `p`'s NFA, the union of the `q`s and a small automaton for
valid SPIFFE paths (non-empty segments, none `.` or `..`), looking for an ID
that `p` matches and no `q` does. Characters that no pattern names behave
alike, so one stands for all of them, and the search is finite.

The product can grow with the number of stars; past `MAX_STATES` explored
states the answer is **sampled** instead: IDs are built from `p` by filling
its stars with fragments of the other patterns, and the rule is reported as
shadowed only if every sample is matched earlier, saying that it was sampled.

`unauthenticated` is a word, not a glob: only an earlier literal
`unauthenticated` shadows it.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from mesh.identity import UNAUTHENTICATED
from mesh.policy import Policy, compile_glob

MAX_STATES = 20000
SAMPLES = 2000
# Characters a SPIFFE path segment may hold (the spec's, with '/' between segments).
_SEGMENT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")


@dataclass(frozen=True)
class Shadowed:
    """Workload `index` is never reached: earlier workloads `by` match all its identities."""

    index: int
    name: str
    by: tuple[str, ...]
    exact: bool  # decided by the automaton search, or (False) by sampling


class _TooBig(Exception):
    pass


# A glob's NFA state is the set of pattern positions reached (after `*` closure).
def _closure(pattern: str, positions: Iterable[int]) -> frozenset[int]:
    out: set[int] = set()
    stack = list(positions)
    while stack:
        i = stack.pop()
        if i in out:
            continue
        out.add(i)
        if i < len(pattern) and pattern[i] == "*":
            stack.append(i + 1)
    return frozenset(out)


def _step(pattern: str, state: frozenset[int], ch: str) -> frozenset[int]:
    nxt = []
    for i in state:
        if i < len(pattern):
            if pattern[i] == "*":
                nxt.append(i)
            elif pattern[i] == ch:
                nxt.append(i + 1)
    return _closure(pattern, nxt)


# The valid-path automaton: 0 segment start, 1 ".", 2 "..", 3 inside a proper segment.
_DEAD = -1


def _path_step(state: int, ch: str) -> int:
    if ch == "/":
        return 0 if state == 3 else _DEAD
    if ch not in _SEGMENT_CHARS:
        return _DEAD
    if ch == ".":
        return {0: 1, 1: 2}.get(state, 3)
    return 3


def _first_unmatched(p: str, qs: Sequence[str], max_states: int) -> str | None:
    """A valid path `p` matches and no `q` does, or None if there is none.

    Raises `_TooBig` past `max_states` explored states.
    """
    return _search(p, qs, max_states, lambda accepted: not any(accepted))


def _search(
    p: str, qs: Sequence[str], max_states: int, want: Callable[[list[bool]], bool]
) -> str | None:
    """The shortest valid path that `p` matches and whose `q` acceptances `want` likes."""
    literals = {c for pat in (p, *qs) for c in pat if c != "*"}
    spare = next((c for c in sorted(_SEGMENT_CHARS) if c not in literals), None)
    alphabet = sorted(literals | {"/"} | ({spare} if spare else set()))
    start = (_closure(p, [0]), tuple(_closure(q, [0]) for q in qs), 0)
    seen = {start: ""}
    queue = deque([start])
    while queue:
        ps, qsets, path = queue.popleft()
        word = seen[(ps, qsets, path)]
        if (
            path == 3
            and len(p) in ps
            and want([len(q) in s for q, s in zip(qs, qsets, strict=True)])
        ):
            return word
        for ch in alphabet:
            nps = _step(p, ps, ch)
            if not nps:
                continue
            npath = _path_step(path, ch)
            if npath == _DEAD:
                continue
            key = (nps, tuple(_step(q, s, ch) for q, s in zip(qs, qsets, strict=True)), npath)
            if key not in seen:
                if len(seen) >= max_states:
                    raise _TooBig
                seen[key] = word + ch
                queue.append(key)
    return None


def _valid_path(path: str) -> bool:
    state = 0
    for ch in path:
        state = _path_step(state, ch)
        if state == _DEAD:
            return False
    return state == 3


def _samples(p: str, qs: Sequence[str], count: int) -> list[str]:
    """Paths `p` matches, its stars filled with fragments of every pattern."""
    fragments = sorted(
        {f for pat in (p, *qs) for f in pat.split("*") if f}
        | {"x", "x/y", "a.b", "-", "_"}
        | {f.strip("/") for pat in qs for f in pat.split("*") if f.strip("/")}
    )
    rng = random.Random(0)
    parts = p.split("*")
    out = []
    for _ in range(count):
        fill = []
        for _star in parts[1:]:
            fill.append("".join(rng.choice(fragments) for _ in range(rng.randint(1, 3))))
        out.append(parts[0] + "".join(f + rest for f, rest in zip(fill, parts[1:], strict=True)))
    return [s for s in out if _valid_path(s)]


def _covered(p: str, qs: Sequence[str], max_states: int, samples: int) -> tuple[bool, bool]:
    """(covered, exact) for one pattern's path against the earlier ones."""
    if not qs:
        return False, True
    try:
        return _first_unmatched(p, qs, max_states) is None, True
    except _TooBig:
        regexes = [compile_glob(q) for q in qs]
        tried = _samples(p, qs, samples)
        return bool(tried) and all(any(r.fullmatch(s) for r in regexes) for s in tried), False


def find_shadowed(
    policy: Policy, max_states: int = MAX_STATES, samples: int = SAMPLES
) -> list[Shadowed]:
    """Every workload of `policy` that earlier workloads make unreachable."""
    prefix = f"spiffe://{policy.trust_domain}/"
    out: list[Shadowed] = []
    dead: set[str] = set()
    for j, workload in enumerate(policy.workloads):
        earlier = policy.workloads[:j]
        earlier_globs = [
            (w.name, m[len(prefix) :]) for w in earlier for m in w.match if m != UNAUTHENTICATED
        ]
        exact = True
        by: list[str] = []
        shadowed = True
        for pattern in workload.match:
            if pattern == UNAUTHENTICATED:
                owners = [
                    w.name for w in earlier if UNAUTHENTICATED in w.match and w.name not in dead
                ]
                if not owners:
                    shadowed = False
                    break
                by.extend(owners[:1])
                continue
            path = pattern[len(prefix) :]
            covered, was_exact = _covered(path, [q for _, q in earlier_globs], max_states, samples)
            exact = exact and was_exact
            if not covered:
                shadowed = False
                break
            # Name the earlier rules that share identities with this pattern (and decide
            # some: a rule that is itself shadowed decides nothing).
            for name, q in earlier_globs:
                if name not in by and name not in dead and _overlaps(path, q, max_states):
                    by.append(name)
        if shadowed and workload.match:
            dead.add(workload.name)
            order = [w.name for w in earlier]
            out.append(Shadowed(j, workload.name, tuple(sorted(set(by), key=order.index)), exact))
    return out


def _overlaps(p: str, q: str, max_states: int) -> bool:
    """Some valid path matches both globs."""
    try:
        return _search(p, [q], max_states, lambda accepted: accepted[0]) is not None
    except _TooBig:
        regex = compile_glob(q)
        return any(regex.fullmatch(s) for s in _samples(p, [q], 200))
