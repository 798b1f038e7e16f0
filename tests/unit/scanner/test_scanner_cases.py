"""The shared case table (tests/data/scanner/cases.json) run against every path.

One table, many engines, in the aho-corasick way: the offline scan, the
offline redaction, and the stream fed in chunks of several sizes must all
agree with the labels.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from extproc.scanner import Scanner

CASES = json.loads(
    (Path(__file__).resolve().parents[2] / "data" / "scanner" / "cases.json").read_text("utf-8")
)


def expected(case: dict) -> list[tuple[str, int, int]]:
    """Labelled findings as (rule, start, end); each match is searched after the previous one."""
    out = []
    pos = 0
    for e in case["expect"]:
        start = case["text"].index(e["match"], pos)
        out.append((e["rule"], start, start + len(e["match"])))
        pos = start + len(e["match"])
    return out


def expected_redaction(case: dict) -> str:
    text = case["text"]
    pieces, pos = [], 0
    for rule, start, end in expected(case):
        pieces += [text[pos:start], f"[REDACTED:{rule}]"]
        pos = end
    return "".join(pieces) + text[pos:]


def stream(scanner: Scanner, data: bytes, size: int) -> tuple[bytes, list]:
    st = scanner.stream()
    out, found = [], []
    for i in range(0, len(data), size):
        o, f = st.feed(data[i : i + size])
        out.append(o)
        found += f
    o, f = st.finish()
    return b"".join([*out, o]), found + f


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_offline_scan_reports_exactly_the_labelled_findings(case: dict) -> None:
    scanner = Scanner.for_scanners(case["scanners"])
    got = [(f.rule, f.start, f.end) for f in scanner.scan(case["text"])]
    assert got == expected(case)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_findings_name_the_scanner_their_rule_belongs_to(case: dict) -> None:
    scanner = Scanner.for_scanners(case["scanners"])
    owner = {r.id: r.scanner for r in scanner.rules}
    # A scored finding is named after its signals' group.
    owner |= {r.signal.group: r.scanner for r in scanner.rules if r.signal is not None}
    for f in scanner.scan(case["text"]):
        assert f.scanner == owner[f.rule]
        assert f.scanner in case["scanners"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_offline_redaction_replaces_exactly_the_labelled_spans(case: dict) -> None:
    scanner = Scanner.for_scanners(case["scanners"])
    assert scanner.redact(case["text"]) == expected_redaction(case)


@pytest.mark.parametrize("size", [1, 3, 8, 61, 1 << 20])
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_streaming_in_any_chunk_size_agrees_with_the_labels(case: dict, size: int) -> None:
    scanner = Scanner.for_scanners(case["scanners"])
    out, found = stream(scanner, case["text"].encode(), size)
    assert [(f.rule, f.start, f.end) for f in found] == expected(case)
    assert out.decode() == expected_redaction(case)
