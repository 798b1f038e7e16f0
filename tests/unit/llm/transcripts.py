"""Fixture transcripts for the adapter tests: real-looking SSE streams and JSON bodies."""

from __future__ import annotations

import json
from pathlib import Path

from extproc.sse import SseEvent, SseParser

FIXTURES = Path(__file__).parent / "fixtures"


def stream_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def events(name: str) -> list[SseEvent]:
    parser = SseParser()
    return parser.feed(stream_bytes(name)) + parser.finish()


def document(name: str) -> dict[str, object]:
    loaded = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded
