"""The matching engine against Python's `re`: syntax, NFA, DFA and kernel together.

For each pattern, the set of (start, end) pairs the kernel reports must be
exactly the set of substrings `re.fullmatch` accepts, within the contexts
and caps of the rule. Tables of (pattern, haystack) cases, brute-forced.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from extproc.scanner.compiler import compile_rules
from extproc.scanner.matcher import MatchState
from extproc.scanner.rules import ANY, NOT_ALNUM, Rule, RuleError
from extproc.scanner.syntax import PatternError, max_length, parse


def candidates(rules: list[Rule], text: str) -> set[tuple[int, int, int]]:
    side = compile_rules(rules).raw
    assert side is not None
    m = MatchState(side)
    m.feed(np.frombuffer(text.encode(), dtype=np.uint8))
    m.finish()
    return set(m.candidates(lambda a, b: text[a:b]))


def brute(pattern: str, text: str, left: str | None, right: str | None, cap: int) -> set:
    out = set()
    for s in range(len(text)):
        if left and s > 0 and not re.fullmatch(left, text[s - 1]):
            continue
        for e in range(s + 1, min(len(text), s + cap) + 1):
            if right and e < len(text) and not re.fullmatch(right, text[e]):
                continue
            if re.fullmatch(pattern, text[s:e]):
                out.add((s, e, 0))
    return out


ENGINE_CASES = [
    ("abc", "xxabcabc abc"),
    ("a|ab|abc", "abcab a"),
    ("a+b", "aaab ab b aab"),
    ("(?:ab)*c", "ababc c abc"),
    ("[0-9]{3}-[0-9]{2}", "123-45 12-34 1234-567"),
    ("x{2,4}", "xxxxxx x xx"),
    ("[^ ]+@[a-z]+", "a@b cd@ef @g"),
    (r"\d+(?:\.\d+)?", "3.14 2. .5 10"),
    ("(?:foo|foobar)baz?", "foobarba foobaz fooba"),
    ("[a-c][^a-c]?[a-c]", "abc a-c axb"),
]


@pytest.mark.parametrize(("pattern", "text"), ENGINE_CASES)
def test_the_kernel_finds_exactly_what_re_fullmatch_accepts(pattern: str, text: str) -> None:
    rule = Rule(id="t", scanner="test", pattern=pattern, max_len=12, left=ANY, right=ANY)
    assert candidates([rule], text) == brute(pattern, text, None, None, 12)


@pytest.mark.parametrize(("pattern", "text"), ENGINE_CASES)
def test_left_and_right_contexts_filter_starts_and_ends(pattern: str, text: str) -> None:
    rule = Rule(
        id="t", scanner="test", pattern=pattern, max_len=12, left=NOT_ALNUM, right=NOT_ALNUM
    )
    ctx = "[^A-Za-z0-9]"
    assert candidates([rule], text) == brute(pattern, text, ctx, ctx, 12)


def test_several_rules_report_their_own_index() -> None:
    rules = [
        Rule(id="a", scanner="test", pattern="ab", left=ANY, right=ANY),
        Rule(id="b", scanner="test", pattern="b+", max_len=5, left=ANY, right=ANY),
    ]
    assert candidates(rules, "abb") == {(0, 2, 0), (1, 2, 1), (1, 3, 1), (2, 3, 1)}


def test_matches_longer_than_the_cap_are_not_reported() -> None:
    rule = Rule(id="t", scanner="test", pattern="[a-z]{2}", left=ANY, right=ANY)
    assert (0, 3, 0) not in candidates([rule], "abc")
    assert rule.cap == 2


def test_non_ascii_literals_match_their_utf8_bytes_and_report_code_points() -> None:
    rule = Rule(id="t", scanner="test", pattern="é+x", max_len=9, left=ANY, right=ANY)
    assert candidates([rule], "aééx") == {(1, 4, 0), (2, 4, 0)}


@pytest.mark.parametrize(
    "pattern",
    [
        "^abc",
        "abc$",
        "a*?",
        "(?=a)",
        "(?P<x>a)",
        r"\bword",
        "a{3,2}",
        "[z-a]",
        "(ab",
        "ab)",
        "\\",
        "",
    ],
)
def test_unsupported_syntax_is_rejected_with_a_pattern_error(pattern: str) -> None:
    with pytest.raises(PatternError):
        parse(pattern)


def test_the_grammar_knows_the_longest_match() -> None:
    assert max_length(parse("ab{2,5}c?")) == 7
    assert max_length(parse("a+")) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pattern": "a*"}, "empty"),
        ({"pattern": "a+"}, "max_len"),
        ({"pattern": "a", "id": "Bad Id"}, "id"),
        ({"pattern": "a", "validator": "nope"}, "validator"),
        ({"pattern": "^a"}, "anchors"),
    ],
)
def test_invalid_rules_are_rejected_with_the_rule_id(kwargs: dict, message: str) -> None:
    args = {"id": "r1", "scanner": "test", **kwargs}
    with pytest.raises(RuleError, match=message):
        compile_rules([Rule(**args)])


def test_duplicate_rule_ids_are_rejected() -> None:
    r = Rule(id="dup", scanner="test", pattern="a")
    with pytest.raises(RuleError, match="duplicate"):
        compile_rules([r, Rule(id="dup", scanner="test", pattern="b")])
