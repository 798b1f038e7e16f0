"""The SSE parser and the response guard over arbitrary upstream bytes.

- SseParser: any bytes either parse or raise SseError; any chunking of the same
  bytes gives the same events (split invariance); serialising an event and
  parsing it again gives the same event.
- SseGuard (every provider, a blocking and a redacting plan): never raises,
  whatever the upstream sends.
"""

from __future__ import annotations

from _inputs import split_chunks

from extproc.llm import PROVIDERS
from extproc.scan_plan import plan_for
from extproc.sse import SseError, SseEvent, SseParser, serialize
from extproc.sse_guard import SseGuard
from mesh.policy import ScanRule

PLANS = [
    plan_for((ScanRule("secrets", "block"), ScanRule("pii", "redact")), enforcing=True),
    plan_for((ScanRule("secrets", "redact"),), enforcing=True),
    plan_for((ScanRule("secrets", "audit"),), enforcing=True),
]
MAX_EVENT = 4096

SEEDS = [
    b"\x03data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi AKIAQ3EGUKZW5XYT7M2P\"}}]}"
    b"\n\ndata: [DONE]\n\n",
    b"\x10event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
    b"\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\r\n\r\nevent: ping\r\ndata: {}\r\n\r\n",
    b"\x01: comment\n\nid: 7\nretry: 10\ndata: a\ndata: b\n\n\xef\xbb\xbfdata: c\r\r",
    b"\x05event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\","
    b"\"item_id\":\"i\",\"output_index\":0,\"content_index\":0,"
    b"\"delta\":\"4111 1111 1111 1111\"}\n\n",
    # A lone surrogate escape in redacted text: the in-place rewrite must fall back.
    b"\x03data: {\"choices\":[{\"index\":0,\"delta\":"
    b"{\"content\":\"\\ud800 AKIAQ3EGUKZW5XYT7M2P\"}}]}\n\ndata: [DONE]\n\n",
]


def _events(chunks: list[bytes]) -> list[SseEvent] | None:
    parser = SseParser(max_event_bytes=MAX_EVENT)
    try:
        events = [e for chunk in chunks for e in parser.feed(chunk)]
        return events + parser.finish()
    except SseError:
        return None


def TestOneInput(data: bytes) -> None:
    selector, chunks = split_chunks(data)
    whole = _events([b"".join(chunks)])
    split = _events(chunks)
    if whole is not None and split is not None:
        assert whole == split, "chunking changed the events"
        assert b"".join(serialize(e) for e in whole) == b"".join(chunks), "bytes not kept"

    provider = PROVIDERS[selector % len(PROVIDERS)]
    plan = PLANS[(selector // len(PROVIDERS)) % len(PLANS)]
    assert plan is not None
    guard = SseGuard(provider, plan, max_event_bytes=MAX_EVENT)
    for chunk in chunks:
        guard.feed(chunk)
    guard.finish()
