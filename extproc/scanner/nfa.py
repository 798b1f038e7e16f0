"""Thompson NFA over byte sets: the first compiled form of a rule pack.

Owns the construction of one non-deterministic automaton holding every
rule of a matcher side by side. Each rule gets its own entry node and its
own accepting node, so the DFA built from it (see `dfa`) still knows which
rule a match belongs to and which rules may start after a given byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .syntax import Alt, Bytes, Concat, Node, Repeat


@dataclass
class NFA:
    eps: list[list[int]] = field(default_factory=list)
    moves: list[list[tuple[int, int]]] = field(default_factory=list)  # (byte mask, target)
    starts: list[int] = field(default_factory=list)  # entry node per rule
    accepts: dict[int, int] = field(default_factory=dict)  # accepting node -> rule index

    def node(self) -> int:
        self.eps.append([])
        self.moves.append([])
        return len(self.eps) - 1

    def add_rule(self, tree: Node) -> None:
        """Append one rule; its index is the order of the calls."""
        start = self.node()
        end = self._build(tree, start)
        accept = self.node()
        self.eps[end].append(accept)
        self.starts.append(start)
        self.accepts[accept] = len(self.starts) - 1

    def _build(self, tree: Node, entry: int) -> int:
        """Wire `tree` starting at `entry`; return the node reached at its end."""
        if isinstance(tree, Bytes):
            out = self.node()
            self.moves[entry].append((tree.mask, out))
            return out
        if isinstance(tree, Concat):
            cur = entry
            for item in tree.items:
                cur = self._build(item, cur)
            return cur
        if isinstance(tree, Alt):
            out = self.node()
            for item in tree.items:
                branch = self.node()
                self.eps[entry].append(branch)
                self.eps[self._build(item, branch)].append(out)
            return out
        return self._repeat(tree, entry)

    def _repeat(self, tree: Repeat, entry: int) -> int:
        cur = entry
        for _ in range(tree.lo):
            cur = self._build(tree.item, cur)
        if tree.hi is None:
            # A fresh loop head keeps the back edge from leaking into `cur`'s other exits.
            head = self.node()
            self.eps[cur].append(head)
            body_end = self._build(tree.item, head)
            self.eps[body_end].append(head)
            return head
        out = self.node()
        self.eps[cur].append(out)
        for _ in range(tree.hi - tree.lo):
            cur = self._build(tree.item, cur)
            self.eps[cur].append(out)
        return out

    def closure(self, nodes: frozenset[int] | set[int]) -> frozenset[int]:
        stack = list(nodes)
        seen = set(nodes)
        while stack:
            n = stack.pop()
            for t in self.eps[n]:
                if t not in seen:
                    seen.add(t)
                    stack.append(t)
        return frozenset(seen)
