"""Rule pattern syntax: a small, byte-level regular-expression parser.

Owns the grammar that rule patterns are written in and turns a pattern
string into an abstract syntax tree whose leaves are *byte sets*. The
grammar is a strict subset of Python's `re` syntax, so the very same
pattern strings can be handed to `re`, Hyperscan or a reviewer's eye:

    literals, `.`, `\\d \\w \\s \\D \\W \\S`, `\\xHH`, `\\n \\r \\t`, escaped
    punctuation, `[...]` / `[^...]` classes with ranges, `( )` and `(?: )`
    groups, `|`, and the quantifiers `? * + {m} {m,} {m,n}` (greedy only).

Anchors, back-references, look-around and lazy quantifiers are rejected:
match boundaries are expressed as the rule's left/right context byte sets
instead (see `rules.Rule`), which is what lets one DFA serve every rule.
Patterns are matched against UTF-8 bytes; a non-ASCII literal stands for
its UTF-8 encoding.
"""

from __future__ import annotations

from dataclasses import dataclass

ALL_BYTES = (1 << 256) - 1


def byteset(chars: str | bytes) -> int:
    """A byte set (a 256-bit int) from the given bytes or ASCII characters."""
    raw = chars.encode("latin-1") if isinstance(chars, str) else chars
    mask = 0
    for b in raw:
        mask |= 1 << b
    return mask


def byte_range(lo: int, hi: int) -> int:
    return ((1 << (hi + 1)) - 1) ^ ((1 << lo) - 1)


DIGIT = byte_range(0x30, 0x39)
UPPER = byte_range(0x41, 0x5A)
LOWER = byte_range(0x61, 0x7A)
WORD = DIGIT | UPPER | LOWER | byteset("_")
SPACE = byteset(" \t\n\r\f\v")
DOT = ALL_BYTES & ~byteset("\n")


class PatternError(ValueError):
    """A rule pattern that the scanner grammar does not accept."""


# AST nodes: small immutable tuples keep the NFA builder simple.
@dataclass(frozen=True)
class Bytes:
    mask: int


@dataclass(frozen=True)
class Concat:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Alt:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Repeat:
    item: Node
    lo: int
    hi: int | None  # None means unbounded


Node = Bytes | Concat | Alt | Repeat

_MAX_COUNT = 1000


def _fold_case(mask: int) -> int:
    out = mask
    for b in range(0x41, 0x5B):
        if mask >> b & 1:
            out |= 1 << (b + 0x20)
        if mask >> (b + 0x20) & 1:
            out |= 1 << b
    return out


class _Parser:
    def __init__(self, pattern: str, ignore_case: bool) -> None:
        self.p = pattern
        self.i = 0
        self.ignore_case = ignore_case

    def error(self, msg: str) -> PatternError:
        near = self.p[max(0, self.i - 20) : self.i + 20]
        return PatternError(f"{msg} at offset {self.i} (near {near!r})")

    def peek(self) -> str | None:
        return self.p[self.i] if self.i < len(self.p) else None

    def parse(self) -> Node:
        node = self.alt()
        if self.i != len(self.p):
            raise self.error("unbalanced ')'")
        return node

    def alt(self) -> Node:
        items = [self.concat()]
        while self.peek() == "|":
            self.i += 1
            items.append(self.concat())
        return items[0] if len(items) == 1 else Alt(tuple(items))

    def concat(self) -> Node:
        items: list[Node] = []
        while (c := self.peek()) is not None and c not in "|)":
            items.append(self.quantified())
        return items[0] if len(items) == 1 else Concat(tuple(items))

    def quantified(self) -> Node:
        atom = self.atom()
        while (c := self.peek()) is not None and c in "?*+{":
            if c == "{":
                close = self.p.find("}", self.i)
                body = self.p[self.i + 1 : close] if close > 0 else ""
                lo_s, _, hi_s = body.partition(",")
                if not lo_s.isdigit() or (hi_s and not hi_s.isdigit()):
                    raise self.error("bad counted repetition")
                lo = int(lo_s)
                hi: int | None = lo if "," not in body else (int(hi_s) if hi_s else None)
                if (hi is not None and hi < lo) or lo > _MAX_COUNT or (hi or 0) > _MAX_COUNT:
                    raise self.error("bad counted repetition bounds")
                self.i = close + 1
            else:
                lo, hi = {"?": (0, 1), "*": (0, None), "+": (1, None)}[c]
                self.i += 1
            if self.peek() in ("?", "+"):
                raise self.error("lazy and possessive quantifiers are not supported")
            atom = Repeat(atom, lo, hi)
        return atom

    def atom(self) -> Node:
        c = self.p[self.i]
        if c == "(":
            self.i += 1
            if self.p.startswith("?:", self.i):
                self.i += 2
            elif self.peek() == "?":
                raise self.error("only (?:...) groups are supported")
            node = self.alt()
            if self.peek() != ")":
                raise self.error("missing ')'")
            self.i += 1
            return node
        if c == "[":
            return Bytes(self.klass())
        if c in "^$":
            raise self.error("anchors are not supported; use the rule's left/right context")
        if c in "*+?{":
            raise self.error("nothing to repeat")
        if c == ".":
            self.i += 1
            return Bytes(DOT)
        if c == "\\":
            mask = self.escape(in_class=False)
            if isinstance(mask, bytes):
                return _literal(mask)
            return Bytes(mask)
        self.i += 1
        enc = c.encode("utf-8")
        if len(enc) == 1:
            mask = 1 << enc[0]
            return Bytes(_fold_case(mask) if self.ignore_case else mask)
        return _literal(enc)

    def escape(self, in_class: bool) -> int | bytes:
        self.i += 1
        if self.i >= len(self.p):
            raise self.error("trailing backslash")
        c = self.p[self.i]
        self.i += 1
        classes = {
            "d": DIGIT,
            "D": ALL_BYTES & ~DIGIT,
            "w": WORD,
            "W": ALL_BYTES & ~WORD,
            "s": SPACE,
            "S": ALL_BYTES & ~SPACE,
        }
        if c in classes:
            return classes[c]
        if c == "x":
            hx = self.p[self.i : self.i + 2]
            if len(hx) != 2 or any(h not in "0123456789abcdefABCDEF" for h in hx):
                raise self.error("bad \\x escape")
            self.i += 2
            return 1 << int(hx, 16)
        simple = {"n": "\n", "r": "\r", "t": "\t", "f": "\f", "v": "\v"}
        if c in simple:
            return 1 << ord(simple[c])
        if c.isalnum():
            raise self.error(f"unsupported escape \\{c}")
        enc = c.encode("utf-8")
        if len(enc) > 1:
            if in_class:
                raise self.error("non-ASCII characters are not allowed in classes")
            return enc
        mask = 1 << enc[0]
        return _fold_case(mask) if self.ignore_case else mask

    def klass(self) -> int:
        self.i += 1
        negate = self.peek() == "^"
        if negate:
            self.i += 1
        mask = 0
        first = True
        while True:
            c = self.peek()
            if c is None:
                raise self.error("missing ']'")
            if c == "]" and not first:
                self.i += 1
                break
            first = False
            lo = self.class_atom()
            if self.peek() == "-" and self.i + 1 < len(self.p) and self.p[self.i + 1] != "]":
                self.i += 1
                hi = self.class_atom()
                if lo is None or hi is None or hi < lo:
                    raise self.error("bad class range")
                mask |= byte_range(lo, hi)
            elif lo is None:
                mask |= self._last_class
            else:
                mask |= 1 << lo
        if self.ignore_case:
            mask = _fold_case(mask)
        return ALL_BYTES & ~mask if negate else mask

    _last_class = 0

    def class_atom(self) -> int | None:
        """One byte value, or None when the atom was a class escape like \\d."""
        c = self.p[self.i]
        if c == "\\":
            v = self.escape(in_class=True)
            if isinstance(v, bytes):
                raise self.error("non-ASCII characters are not allowed in classes")
            if v & (v - 1):
                self._last_class = v
                return None
            return v.bit_length() - 1
        if ord(c) > 0x7F:
            raise self.error("non-ASCII characters are not allowed in classes; use \\xHH")
        self.i += 1
        return ord(c)


def _literal(enc: bytes) -> Node:
    return Concat(tuple(Bytes(1 << b) for b in enc))


def parse(pattern: str, ignore_case: bool = False) -> Node:
    """Parse a rule pattern into an AST of byte sets."""
    if not pattern:
        raise PatternError("empty pattern")
    return _Parser(pattern, ignore_case).parse()


def max_length(node: Node) -> int | None:
    """Longest match of the node in bytes, or None if it is unbounded."""
    if isinstance(node, Bytes):
        return 1
    if isinstance(node, Concat):
        total = 0
        for item in node.items:
            m = max_length(item)
            if m is None:
                return None
            total += m
        return total
    if isinstance(node, Alt):
        best = 0
        for item in node.items:
            m = max_length(item)
            if m is None:
                return None
            best = max(best, m)
        return best
    inner = max_length(node.item)
    if node.hi is None:
        return None if inner != 0 else 0
    return None if inner is None else inner * node.hi


def can_be_empty(node: Node) -> bool:
    if isinstance(node, Bytes):
        return False
    if isinstance(node, Concat):
        return all(can_be_empty(i) for i in node.items)
    if isinstance(node, Alt):
        return any(can_be_empty(i) for i in node.items)
    return node.lo == 0 or can_be_empty(node.item)
