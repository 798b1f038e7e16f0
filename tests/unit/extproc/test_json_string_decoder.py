"""The incremental JSON string decoder and the scan that reads JSON as its reader does."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.json_scan import JsonTextScan
from extproc.json_string_decoder import RAW, SEPARATOR, JsonStringDecoder
from extproc.scan_plan import plan_for
from mesh.policy import ScanRule

AWS_KEY = "AKIAQ3EGUKZW5XYT7M2P"
ESCAPED = "".join(f"\\u{ord(c):04x}" for c in AWS_KEY)


def decoded(source: str, cut: int) -> tuple[str, list]:
    decoder = JsonStringDecoder()
    segments = decoder.feed(source[:cut]) + decoder.feed(source[cut:]) + decoder.finish()
    return "".join(s.text for s in segments if s.string != SEPARATOR), segments


@pytest.mark.parametrize(
    "source",
    ['{"a": "x\\ny", "b": ["\\u00e9", 1.5e3, true, null]}', '["\\ud83d\\ude00 ok", "\\/"]',
     '{"k\\"": "\\\\"}'],
)
def test_every_cut_decodes_what_json_loads_reads(source: str) -> None:
    strings: list[str] = []

    def collect(node: object) -> None:
        if isinstance(node, str):
            strings.append(node)
        elif isinstance(node, dict):
            for key, value in node.items():
                strings.append(key)
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(json.loads(source))
    for cut in range(len(source) + 1):
        text, segments = decoded(source, cut)
        assert text == "".join(strings)
        for segment in segments:
            if segment.plain:
                assert source[segment.source_start : segment.source_end] == segment.text


def test_text_that_is_not_json_is_read_raw_from_where_it_stops_being_json() -> None:
    text, segments = decoded('{"a": 1} then AKIA', 3)
    assert segments[-1].string == RAW
    assert text.endswith("then AKIA")


def test_a_lone_surrogate_escape_reads_as_the_replacement_character() -> None:
    assert decoded('["\\ud800x"]', 4)[0] == "\ufffdx"


def scan(source: str, pieces: int, action: str = "redact") -> str:
    plan = plan_for((ScanRule("secrets", action),), enforcing=True)
    assert plan is not None
    stream = JsonTextScan(plan.stream(), {"secrets"}, {"secrets"} if action == "block" else ())
    size = max(1, len(source) // pieces)
    out = b"".join(stream.feed(source[i : i + size].encode())[0]
                   for i in range(0, len(source), size))
    return (out + stream.finish()[0]).decode()


@settings(max_examples=50, deadline=None)
@given(pieces=st.integers(1, 40), escape=st.booleans())
def test_an_escaped_key_is_redacted_in_the_source_and_the_result_stays_json(
    pieces: int, escape: bool
) -> None:
    source = '{"note": "use ' + (ESCAPED if escape else AWS_KEY) + ' now", "n": [1]}'
    out = scan(source, pieces)
    assert json.loads(out) == {"note": "use [REDACTED:aws-access-key-id] now", "n": [1]}


def test_a_document_without_findings_comes_out_byte_for_byte() -> None:
    source = '{"a" : "\\u00e9\\n" ,\n "b":[ 1 ]}'
    assert scan(source, 7) == source


def test_a_block_releases_only_the_source_before_the_match() -> None:
    out = scan('{"note": "hi ' + ESCAPED + '"}', 5, action="block")
    assert out == '{"note": "hi '


@pytest.mark.parametrize("pieces", [1, 3, 9, 40])
def test_a_key_after_letters_that_looked_like_structure_is_still_redacted(pieces: int) -> None:
    source = "{} true AKIAQ3EGUKZW5XYT7M2P tail"
    out = scan(source, pieces)
    assert AWS_KEY not in out and "[REDACTED:aws-access-key-id]" in out
    assert out == "{} true [REDACTED:aws-access-key-id] tail"
