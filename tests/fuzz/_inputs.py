"""Turning the fuzzer's bytes into structured inputs without atheris, so the targets'
seeds also run as ordinary tests (`test_fuzz_seeds.py`)."""

from __future__ import annotations


def split_chunks(data: bytes) -> tuple[int, list[bytes]]:
    """The first byte picks a selector and a chunk size; the rest is cut into chunks."""
    if not data:
        return 0, [b""]
    head, rest = data[0], data[1:]
    size = (head % 17) + 1
    return head, [rest[i : i + size] for i in range(0, len(rest), size)] or [b""]


def text(data: bytes) -> str:
    return data.decode("utf-8", "replace")
