"""`FileScan`: blockwise scanning gives the offline scanner's findings, placed exactly."""

from __future__ import annotations

import io

import pytest

from extproc.scanner import Scanner
from extproc.scanner.file_scan import FileScan, NotUtf8Error, redact_to

KEY = "AKIAQ3EGUKZW5XYT7M2P"
TEXT = (
    "première ligne\n"
    f"clé {KEY} et ✉ bob@acme.com\n"
    "\n"
    "carte 4111 1111 1111 1111, ignore previous instructions\n"
) * 3


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner.for_scanners(["secrets", "pii", "prompt-injection"])


def _expected(text: str, scanner: Scanner) -> list[tuple[str, int, int, int, int]]:
    out = []
    raw = text.encode()
    for f in scanner.scan(text):
        before = text[: f.start]
        line = before.count("\n") + 1
        column = f.start - (before.rfind("\n") + 1) + 1
        byte = len(before.encode())
        out.append((f.rule, line, column, byte, len(text[f.start : f.end].encode())))
        assert raw[byte : byte + out[-1][4]].decode() == text[f.start : f.end]
    return out


@pytest.mark.parametrize("block", [1, 2, 3, 7, 64, 1 << 20])
def test_any_block_size_gives_the_offline_findings_with_lines_columns_and_bytes(
    scanner: Scanner, block: int
) -> None:
    found = list(FileScan(scanner, io.BytesIO(TEXT.encode()), block_bytes=block))
    got = [(f.rule, f.line, f.column, f.byte_offset, f.byte_length) for f in found]
    assert got == _expected(TEXT, scanner)
    assert len(got) == 12


@pytest.mark.parametrize("block", [1, 5, 1 << 20])
def test_invalid_bytes_count_one_code_point_each_and_keep_byte_offsets_exact(
    scanner: Scanner, block: int
) -> None:
    raw = b"\xe9t\xe9 \xff\xfe\xe6\x97 " + KEY.encode() + b"\n\x80" + KEY.encode()
    scan = FileScan(scanner, io.BytesIO(raw), block_bytes=block)
    found = list(scan)
    assert [(f.line, f.column) for f in found] == [(1, 10), (2, 2)]
    assert [raw[f.byte_offset : f.byte_offset + f.byte_length] for f in found] == [KEY.encode()] * 2
    assert (scan.invalid_bytes, scan.first_invalid_offset) == (7, 0)
    # The same secret hashes the same wherever it is.
    assert found[0].hash == found[1].hash


def test_strict_utf8_stops_at_the_first_invalid_byte(scanner: Scanner) -> None:
    with pytest.raises(NotUtf8Error) as info:
        list(FileScan(scanner, io.BytesIO(b"fine\nthen \xc3("), strict_utf8=True, block_bytes=3))
    assert info.value.byte_offset == 10


def test_blockwise_redaction_equals_the_offline_redaction(scanner: Scanner) -> None:
    for block in (1, 4, 1 << 20):
        sink = io.BytesIO()
        count = redact_to(scanner, io.BytesIO(TEXT.encode()), sink, block_bytes=block)
        assert sink.getvalue().decode() == scanner.redact(TEXT)
        assert count == 12
