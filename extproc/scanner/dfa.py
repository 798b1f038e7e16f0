"""Subset construction: the NFA of a rule pack becomes flat numpy tables.

Owns the deterministic automaton the kernels walk:

* `byte_class[256]` maps each byte to an equivalence class, so the
  transition table has one column per class instead of per byte (keeps it
  in L1/L2 cache);
* `trans[state, class]` is the next state, state 0 being the dead state;
* `start_state[258]` is the state a match attempt begins in, chosen by the
  byte *before* it (index 256 is start of text, 257 right after a Unicode
  tag character). This is how per-rule left
  context ("not after a letter") costs nothing at run time;
* `acc_off`/`acc_rules` list, for every state, the rules that accept there.

The automaton is *anchored*: the kernel starts one attempt per position
that some rule may start at, so every state knows where its attempt
began. That is what makes exact match starts and minimal hold-back cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .nfa import NFA

MAX_STATES = 60_000


class AutomatonTooLarge(ValueError):
    """The rule set would need more DFA states than `MAX_STATES`."""


@dataclass(frozen=True)
class DFATables:
    byte_class: np.ndarray  # int32[256]
    trans: np.ndarray  # int32[n_states, n_classes]
    start_state: np.ndarray  # int32[257]
    acc_off: np.ndarray  # int32[n_states + 1]
    acc_rules: np.ndarray  # int32[...]

    @property
    def n_states(self) -> int:
        return int(self.trans.shape[0])


def _byte_classes(nfa: NFA) -> tuple[np.ndarray, list[int]]:
    masks = {m for moves in nfa.moves for m, _ in moves}
    sig: list[tuple[int, ...]] = [() for _ in range(256)]
    ordered = sorted(masks)
    for b in range(256):
        sig[b] = tuple(1 if m >> b & 1 else 0 for m in ordered)
    ids: dict[tuple[int, ...], int] = {}
    cls = np.zeros(256, dtype=np.int32)
    reps: list[int] = []
    for b in range(256):
        if sig[b] not in ids:
            ids[sig[b]] = len(ids)
            reps.append(b)
        cls[b] = ids[sig[b]]
    return cls, reps


def build(nfa: NFA, left_ok: list[np.ndarray]) -> DFATables:
    """Determinise `nfa`; `left_ok[r][v]` says rule r may start after byte v.

    Context 256 is the start of text and 257 "right after a Unicode tag character".
    """
    byte_class, reps = _byte_classes(nfa)
    n_classes = len(reps)
    # Per NFA node: class -> targets, so each DFA state costs one pass over its nodes.
    node_moves: list[dict[int, list[int]]] = []
    for moves in nfa.moves:
        per: dict[int, list[int]] = {}
        for mask, target in moves:
            for c, rep in enumerate(reps):
                if mask >> rep & 1:
                    per.setdefault(c, []).append(target)
        node_moves.append(per)

    ids: dict[frozenset[int], int] = {frozenset(): 0}
    order: list[frozenset[int]] = [frozenset()]
    closure_memo: dict[frozenset[int], frozenset[int]] = {}

    def intern(raw: frozenset[int]) -> int:
        closed = closure_memo.get(raw)
        if closed is None:
            closed = nfa.closure(raw)
            closure_memo[raw] = closed
        sid = ids.get(closed)
        if sid is None:
            if len(order) >= MAX_STATES:
                raise AutomatonTooLarge(f"rule set needs more than {MAX_STATES} DFA states")
            sid = len(order)
            ids[closed] = sid
            order.append(closed)
        return sid

    n_ctx = len(left_ok[0]) if left_ok else 258
    start_state = np.zeros(n_ctx, dtype=np.int32)
    by_allowed: dict[tuple[int, ...], int] = {}
    for v in range(n_ctx):
        allowed = tuple(r for r in range(len(nfa.starts)) if left_ok[r][v])
        if allowed not in by_allowed:
            by_allowed[allowed] = (
                intern(frozenset(nfa.starts[r] for r in allowed)) if allowed else 0
            )
        start_state[v] = by_allowed[allowed]

    rows: list[list[int]] = []
    i = 0
    while i < len(order):
        state = order[i]
        targets: dict[int, set[int]] = {}
        for n in state:
            for c, ts in node_moves[n].items():
                targets.setdefault(c, set()).update(ts)
        row = [0] * n_classes
        for c, target_set in targets.items():
            row[c] = intern(frozenset(target_set))
        rows.append(row)
        i += 1

    acc_off = np.zeros(len(order) + 1, dtype=np.int32)
    acc_rules: list[int] = []
    for sid, state in enumerate(order):
        rules = sorted({nfa.accepts[n] for n in state if n in nfa.accepts})
        acc_rules.extend(rules)
        acc_off[sid + 1] = len(acc_rules)
    return DFATables(
        byte_class=byte_class,
        trans=np.array(rows, dtype=np.int32).reshape(len(order), n_classes),
        start_state=start_state,
        acc_off=acc_off,
        acc_rules=np.array(acc_rules, dtype=np.int32),
    )
