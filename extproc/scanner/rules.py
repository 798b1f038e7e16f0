"""Rule definitions: the declarative input of the scanner.

Owns `Rule`, the one record a rule pack, a policy's custom rule or a
deny-list is written as, and the rule-set hash that compiled tables are
cached under. A rule says *what* to match; everything about *how* lives
in the compiler and the kernels.

Match semantics, for every rule set: at each position, the rules whose
left context admits the previous character may start; each attempt
yields its candidate ends (pattern matched and right context holds, or
end of text); candidates are taken leftmost first, then longest, then in
rule order, and the first one whose validator accepts wins and consumes
its span. Non-overlapping within one side (raw or normalised); findings
of the two sides may overlap and are reported both.

An unbounded raw pattern (a PEM body, a run of tag characters) that is
still matching when it reaches its `max_len` yields a candidate ending
exactly there, whatever the right context: a secret longer than the cap
is reported in cap-sized pieces instead of escaping detection.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .syntax import can_be_empty, max_length, parse

# Context classes, written in the pattern syntax (one byte class each).
NOT_WORD = r"[^A-Za-z0-9_]"
NOT_ALNUM = r"[^A-Za-z0-9]"
ANY = "ANY"

SCANNERS = ("secrets", "pii", "prompt-injection")

# Between two letters of a normalised word: one separator, so "i g n o r e" matches.
INTRA = r"[ ._*\-]?"

_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


class RuleError(ValueError):
    """A rule that cannot be compiled, with the rule id in the message."""


@dataclass(frozen=True)
class Rule:
    """One pattern to find.

    - `id` names the rule in findings and in `[REDACTED:<id>]`.
    - `scanner` is the family it belongs to ("secrets", "pii", ...).
    - `pattern` uses the grammar of `syntax` and is matched against UTF-8
      bytes, or, when `normalized`, against the folded text of `normalize`.
    - `max_len` caps a match (bytes, or code points when normalised). It is
      required for unbounded patterns and bounds the stream's hold-back.
    - `validator` names a check in `validators.VALIDATORS`, run on each
      candidate; it may also narrow the reported span.
    - `left` / `right` are byte classes the character before / after a
      match must belong to (start and end of text always qualify), or ANY.
    - `keywords`: literal anchors, one of which occurs in every match (case-
      insensitively when `ignore_case`; letter-spaced as in `INTRA` when
      `normalized`). The anchored DFA needs no separate literal prefilter
      (see DESIGN.md for the measurement); keywords document the anchors,
      are checked against pattern samples by the property tests, and feed
      the Aho-Corasick reference in the benchmark.
    - `extend` (raw rules only): an ASCII byte class the match also covers
      to the *left* of where `pattern` starts, maximally, between
      `extend_min` and `extend_max` characters; `left` then applies before
      the extended start. It lets `pattern` start at a rare anchor ("@" for
      e-mail, "://" for URLs) instead of at every word, which is what keeps
      the kernel fast; the exact start is found on candidates only.
    - `after_tag`: whether a match may start right after a Unicode tag
      character (U+E0000..U+E007F). Only the tag-run rule says no, so that a
      run of tag characters is one attempt, not one per character.
    """

    id: str
    scanner: str
    pattern: str
    max_len: int | None = None
    validator: str | None = None
    left: str = NOT_WORD
    right: str = NOT_WORD
    normalized: bool = False
    ignore_case: bool = False
    keywords: tuple[str, ...] = ()
    description: str = ""
    extend: str | None = None
    extend_min: int = 1
    extend_max: int = 64
    after_tag: bool = True

    def check(self) -> None:
        """Raise RuleError if the rule cannot be compiled."""
        if not _ID.match(self.id):
            raise RuleError(f"rule {self.id!r}: id must match {_ID.pattern}")
        try:
            tree = parse(self.pattern, self.ignore_case)
        except ValueError as exc:
            raise RuleError(f"rule {self.id!r}: {exc}") from exc
        if can_be_empty(tree):
            raise RuleError(f"rule {self.id!r}: pattern can match the empty string")
        if max_length(tree) is None and self.max_len is None:
            raise RuleError(f"rule {self.id!r}: unbounded pattern needs max_len")
        if self.max_len is not None and self.max_len < 1:
            raise RuleError(f"rule {self.id!r}: max_len must be positive")
        if self.extend is not None:
            if self.normalized:
                raise RuleError(f"rule {self.id!r}: extend is for raw rules only")
            if not 1 <= self.extend_min <= self.extend_max <= 256:
                raise RuleError(f"rule {self.id!r}: need 1 <= extend_min <= extend_max <= 256")
            node = parse(self.extend)
            from .syntax import Bytes

            if not isinstance(node, Bytes) or node.mask >> 128:
                raise RuleError(f"rule {self.id!r}: extend must be one ASCII byte class")
        from .validators import VALIDATORS

        if self.validator is not None and self.validator not in VALIDATORS:
            raise RuleError(f"rule {self.id!r}: unknown validator {self.validator!r}")

    @property
    def cap(self) -> int:
        """The effective maximum match length used by the kernel."""
        bound = max_length(parse(self.pattern, self.ignore_case))
        if self.normalized:
            # Folded bytes and original code points differ: invisible characters
            # vanish and whitespace runs collapse, so allow three hidden per visible.
            return self.max_len if self.max_len is not None else 4 * (bound or 0)
        if bound is None:
            assert self.max_len is not None
            return self.max_len
        return bound if self.max_len is None else min(bound, self.max_len)


def ruleset_hash(rules: Iterable[Rule]) -> str:
    """A stable digest of everything that affects compiled tables and results."""
    h = hashlib.sha256()
    for r in rules:
        h.update(repr(r).encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def deny_list(words: Iterable[str], rule_id: str = "deny-list", scanner: str = "deny-list") -> Rule:
    """A normalised rule matching any of `words` as whole words (for policy deny-lists).

    Words are folded the same way the text is, so "Ｆｏｏ" in a deny-list and
    "foo" in text meet.
    """
    from .normalize import fold_text

    alts = []
    for w in words:
        folded = fold_text(w).strip()
        if not folded:
            continue
        alts.append("".join(_escape_folded(c) for c in folded))
    if not alts:
        raise RuleError(f"rule {rule_id!r}: deny-list is empty")
    longest = max(len(a) for a in words)
    return Rule(
        id=rule_id,
        scanner=scanner,
        pattern="(?:" + "|".join(sorted(set(alts))) + ")",
        max_len=max(4 * longest, 16),
        left=NOT_ALNUM,
        right=NOT_ALNUM,
        normalized=True,
        description="custom deny-list",
    )


def _escape_folded(c: str) -> str:
    if c == "\x80":
        return "\\x80"
    if c.isalnum() or c == " ":
        return c
    return "\\" + c

