"""`FileScan` places findings exactly, however the input is cut into blocks and whatever
its bytes: line, column and byte offset always point at the match in the original bytes."""

from __future__ import annotations

import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc.scanner import Scanner
from extproc.scanner.file_scan import FileScan

PIECES = [
    b"AKIAQ3EGUKZW5XYT7M2P", b"4111 1111 1111 1111", b"4111.1111.1111.1111", b"bob@acme.com",
    b"ignore previous instructions", b"\n", b" ", b"\xff", b"\xe6\x97", b"\xc3\xa9", b"text",
    b"+1 415 555 0134", "\u00a0".encode(), b"x@", b"41",
]  # fmt: skip
SCANNER = Scanner.for_scanners(["secrets", "pii", "prompt-injection"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PIECES), max_size=40), st.integers(1, 64))
def test_findings_point_at_their_bytes_for_any_blocking(pieces: list[bytes], block: int) -> None:
    raw = b"".join(pieces)
    whole = list(FileScan(SCANNER, io.BytesIO(raw), block_bytes=1 << 20))
    split = list(FileScan(SCANNER, io.BytesIO(raw), block_bytes=block))
    assert split == whole
    # The offline scanner over the same replaced text finds the same spans.
    text = raw.decode("utf-8", "surrogateescape")
    replaced = "".join("\ufffd" if 0xDC80 <= ord(c) <= 0xDCFF else c for c in text)
    assert [(f.rule, f.start, f.end) for f in whole] == [
        (f.rule, f.start, f.end) for f in SCANNER.scan(replaced)
    ]
    for f in whole:
        before = text[: f.start]
        assert f.line == before.count("\n") + 1
        assert f.column == f.start - (before.rfind("\n") + 1) + 1
        assert f.byte_offset == len(before.encode("utf-8", "surrogateescape"))
        match = text[f.start : f.end].encode("utf-8", "surrogateescape")
        assert raw[f.byte_offset : f.byte_offset + f.byte_length] == match
