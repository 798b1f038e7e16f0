"""Property tests: split invariance, exact streaming redaction, bounded hold-back, robustness.

Texts are built from fragments that matter (real-looking secrets, PII,
injection phrasings with obfuscations, near-misses) mixed with arbitrary
Unicode, so the properties are exercised where matches actually happen.
The offline scan takes the prefiltered whole-text path and a stream of two
or more chunks takes the per-byte path, so agreement also checks one
against the other.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc.scanner import Scanner
from extproc.scanner.compiler import compile_rules
from extproc.scanner.matcher import MatchState
from extproc.scanner.packs import PACKS
from extproc.scanner.rules import ANY, INTRA, Rule
from extproc.scanner.validators import VALIDATORS

DATA = Path(__file__).resolve().parents[2] / "data" / "scanner"
CASES = json.loads((DATA / "cases.json").read_text("utf-8"))
FRAGMENTS = sorted(
    {c["text"] for c in CASES}
    | {m["match"] for c in CASES for m in c["expect"]}
    | {
        " ",
        "\n",
        "\u200b",
        "é",
        "😀",
        "日本",
        "0",
        "-",
        "@",
        ":",
        "://",
        "4111 ",
        "+1 ",
        "\U000e0041",
    }
)
ALL = Scanner.for_scanners(["secrets", "pii", "prompt-injection"])
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

texts = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=12)), max_size=12).map(
    "".join
)
# Byte-at-a-time streams cost a Python call per byte: shorter texts, fewer examples.
short_texts = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), max_size=5).map(
    "".join
)
SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run_stream(scanner: Scanner, data: bytes, cuts: list[int]) -> tuple[bytes, list, int]:
    st_ = scanner.stream()
    out, found, worst = [], [], 0
    prev = 0
    for c in [*sorted(set(cuts)), len(data)]:
        o, f = st_.feed(data[prev:c])
        out.append(o)
        found += f
        worst = max(worst, st_.held_bytes - st_.max_hold_bytes)
        prev = c
    o, f = st_.finish()
    return b"".join([*out, o]), found + f, worst


@SETTINGS
@given(text=texts, data=st.data())
def test_any_split_gives_the_offline_findings_and_redaction(text: str, data) -> None:
    raw = text.encode()
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=8))
    out, found, worst = run_stream(ALL, raw, cuts)
    redacted, offline = ALL.scan_and_redact(text)
    assert found == offline
    assert out.decode() == redacted
    assert worst <= 0


@SLOW
@given(text=short_texts)
def test_one_byte_chunks_give_the_offline_findings_and_redaction(text: str) -> None:
    raw = text.encode()
    out, found, worst = run_stream(ALL, raw, list(range(1, len(raw))))
    assert found == ALL.scan(text)
    assert out.decode() == ALL.redact(text)
    assert worst <= 0


@SLOW
@given(text=short_texts)
def test_one_character_chunks_give_the_offline_findings(text: str) -> None:
    cuts, pos = [], 0
    for ch in text:
        pos += len(ch.encode())
        cuts.append(pos)
    out, found, _ = run_stream(ALL, text.encode(), cuts)
    assert found == ALL.scan(text)
    assert out.decode() == ALL.redact(text)


@SETTINGS
@given(raw=st.binary(max_size=200), data=st.data())
def test_arbitrary_bytes_never_crash_and_match_the_replacement_decoding(raw: bytes, data) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=6))
    out, found, worst = run_stream(ALL, raw, cuts)
    text = raw.decode("utf-8", errors="replace")
    assert found == ALL.scan(text)
    assert out.decode() == ALL.redact(text)
    assert worst <= 0


@SETTINGS
@given(text=st.text(alphabet=st.characters(), max_size=60))
def test_arbitrary_unicode_including_surrogates_never_crashes(text: str) -> None:
    findings = ALL.scan(text)
    for f in findings:
        assert 0 <= f.start < f.end <= len(text)
    assert isinstance(ALL.redact(text), str)


@SETTINGS
@given(text=texts)
def test_findings_are_ordered_and_do_not_overlap_within_a_side(text: str) -> None:
    findings = ALL.scan(text)
    assert findings == sorted(findings, key=lambda f: (f.start, -f.end, f.scanner, f.rule))
    for side in ({"secrets", "pii"}, {"prompt-injection"}):
        spans = [
            (f.start, f.end)
            for f in findings
            if f.scanner in side and f.rule != "unicode-tag-smuggling"
        ]
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


ENGINE_PATTERNS = ["ab|a", "a+b?", "(?:ab)*a", "[ab]{2,3}", "b(?:a|ab)+"]


@SETTINGS
@given(pattern=st.sampled_from(ENGINE_PATTERNS), text=st.text(alphabet="ab -", max_size=14))
def test_the_kernel_agrees_with_re_on_random_haystacks(pattern: str, text: str) -> None:
    rule = Rule(id="t", scanner="test", pattern=pattern, max_len=6, left=ANY, right=ANY)
    side = compile_rules([rule]).raw
    m = MatchState(side)
    m.feed(np.frombuffer(text.encode(), dtype=np.uint8))
    m.finish()
    got = set(m.candidates(lambda a, b: text[a:b]))
    want = {
        (s, e, 0)
        for s in range(len(text))
        for e in range(s + 1, min(len(text), s + 6) + 1)
        if re.fullmatch(pattern, text[s:e])
    }
    forced = {(s, e, 0) for (s, e, _) in got if e - s == 6}  # reported at the cap
    assert got - forced == want - forced


RAW_RULES = [r for name in ("secrets", "pii") for r in PACKS[name]]
_DIGIT_RULES = {"payment-card", "us-ssn", "iban", "phone-number"}
NORMALIZED_RULES = [r for r in PACKS["prompt-injection"] if r.normalized]


def keyword_pattern(word: str, normalized: bool) -> str:
    """The regular expression a rule's keyword is looked for with ("re:..." is one already);
    letters of a normalised keyword may be spaced out as the text they match may be."""
    if word.startswith("re:"):
        return word[3:]
    out: list[str] = []
    for i, c in enumerate(word):
        out.append(c if c.isalnum() else "\\" + c if c.isascii() else c)
        if normalized and i + 1 < len(word) and c.isalpha() and word[i + 1].isalpha():
            out.append(INTRA)
    return "".join(out)


def _has_keyword(rule: Rule, sample: str) -> bool:
    flags = re.IGNORECASE if rule.ignore_case else 0
    return any(re.search(keyword_pattern(k, rule.normalized), sample, flags) for k in rule.keywords)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), rule=st.sampled_from([r for r in RAW_RULES if r.id not in _DIGIT_RULES]))
def test_every_match_of_a_secret_or_email_rule_contains_one_of_its_keywords(data, rule) -> None:
    flags = re.IGNORECASE if rule.ignore_case else 0
    sample = data.draw(st.from_regex(re.compile(rule.pattern, flags), fullmatch=True))
    assert _has_keyword(rule, sample), (rule.id, sample)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), rule=st.sampled_from(NORMALIZED_RULES))
def test_every_match_of_an_injection_rule_contains_one_of_its_keywords(data, rule) -> None:
    sample = data.draw(st.from_regex(re.compile(rule.pattern), fullmatch=True))
    assert _has_keyword(rule, sample), (rule.id, sample)


@SETTINGS
@given(data=st.data(), rule=st.sampled_from([r for r in RAW_RULES if r.id in _DIGIT_RULES]))
def test_every_validated_number_contains_two_adjacent_digits(data, rule) -> None:
    # Digit rules only promise their keyword for matches their validator keeps.
    sample = data.draw(st.from_regex(re.compile(rule.pattern), fullmatch=True))
    validator = VALIDATORS[rule.validator] if rule.validator else None
    if validator is None or validator(sample) is not None:
        assert _has_keyword(rule, sample), (rule.id, sample)


def test_validated_numbers_in_the_corpus_contain_two_adjacent_digits() -> None:
    corpus = [json.loads(x) for x in (DATA / "corpus.jsonl").read_text("utf-8").splitlines()]
    numbers = [
        r["text"][s:e] for r in corpus if r["category"] == "pii" and r["format"] != "email"
        for s, e in r["spans"]
    ]  # fmt: skip
    assert len(numbers) > 100
    assert all(re.search("[0-9][0-9]", n) for n in numbers)
