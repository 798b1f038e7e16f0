"""The fast lane's compiled pass, and the guard's use of it: shapes, refusals, hand-over."""

from __future__ import annotations

import json

import numpy as np
import pytest

from extproc.llm import PROVIDERS
from extproc.scan_plan import plan_for
from extproc.sse_fast_lane import (
    DONE,
    LITERAL,
    STOP_BIG,
    STOP_CR,
    TEXT,
    Shape,
    ShapeTable,
    frame,
    shape_candidate,
)
from extproc.sse_guard import SseGuard
from mesh.policy import ScanRule

CHAT, RESPONSES, ANTHROPIC = PROVIDERS
HEAD = b'data: {"choices":[{"index":0,"delta":{"content":"'
TAIL = b'"}}]}\n\n'


def table(*shapes: Shape) -> ShapeTable:
    result = ShapeTable()
    for shape in shapes:
        result.add(shape)
    return result


def framed(data: bytes, shapes: ShapeTable, max_event: int = 1 << 20) -> tuple:
    arrays = [np.zeros(64, dtype=np.int64) for _ in range(5)]
    out = np.zeros(len(data) + 8, dtype=np.uint8)
    count, used, stop = frame(np.frombuffer(data, dtype=np.uint8), 0, max_event, shapes.bytes,
                              shapes.pieces, shapes.rows, *arrays, out)
    starts, ends, kinds, text_starts, text_ends = (a[:count].tolist() for a in arrays)
    texts = [bytes(out[s:e]) if k >= 0 else None
             for s, e, k in zip(text_starts, text_ends, kinds, strict=True)]
    return count, used, stop, list(zip(starts, ends, strict=True)), kinds, texts


CONTENT = table(Shape(("content", 0), ((LITERAL, HEAD), (TEXT, b""), (LITERAL, TAIL))))


def event(literal: bytes) -> bytes:
    return HEAD + literal + TAIL


def test_the_pass_decodes_every_json_escape_it_takes_into_utf8() -> None:
    literal = json.dumps('a"b\\c/d\n\t\r\b\f é ✓ 😀 \u2028 \x01', ensure_ascii=False)[1:-1]
    data = event(literal.encode()) + event(b"\\u00e9\\u2713\\/")
    count, used, stop, _, kinds, texts = framed(data, CONTENT)
    assert (count, used, stop, kinds) == (2, len(data), DONE, [0, 0])
    assert texts[0].decode() == 'a"b\\c/d\n\t\r\b\f é ✓ 😀 \u2028 \x01'
    assert texts[1].decode() == "é✓/"


@pytest.mark.parametrize("literal", [
    b"\\ud800", b"\\ud83d\\ude00", b"a\x01b", b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"",
    b"\\x41", b"\\u12", b'a"b',
], ids=["lone-surrogate", "surrogate-pair", "raw-control", "invalid-utf8", "overlong",
        "utf8-surrogate", "empty", "unknown-escape", "short-escape", "early-quote"])
def test_an_event_the_pass_does_not_fully_understand_is_left_unclassified(literal: bytes) -> None:
    _, _, stop, spans, kinds, _ = framed(event(literal), CONTENT)
    assert stop == DONE and len(spans) == 1 and kinds == [-1]


def test_any_byte_around_the_text_that_differs_from_the_shape_refuses_the_event() -> None:
    odd = [event(b"x").replace(b'"index":0', b'"index":1'),
           event(b"x").replace(b"}}]}", b'},"logprobs":null}]}'),
           event(b"x").replace(b'data: {', b'data:  {'),
           b"event: x\n" + event(b"x")]
    _, _, _, _, kinds, _ = framed(b"".join(odd), CONTENT)
    assert kinds == [-1, -1, -1, -1]


def test_the_pass_frames_like_the_parser_and_stops_at_a_cr_or_an_oversized_event() -> None:
    data = event(b"a") + b"\n" + b": ping\n\n" + event(b"b") + b"data: {\"partial"
    _, used, stop, _, kinds, _ = framed(data, CONTENT)
    assert stop == DONE and kinds == [0, -1, -1, 0]
    assert used == len(data) - len(b'data: {"partial')  # the incomplete event stays
    assert framed(event(b"a") + b"data: x\r\n\r\n", CONTENT)[2] == STOP_CR
    assert framed(event(b"a" * 100), CONTENT, max_event=64)[2] == STOP_BIG


def test_a_shape_has_holes_for_its_sequence_number_and_padding_only() -> None:
    # The live API's field order: the text first, then the changing values.
    raw = (b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
           b'"content_index":0,"delta":"hi","item_id":"m","logprobs":[],'
           b'"obfuscation":"RVeF8c","output_index":0,"sequence_number":41}\n\n')
    found = shape_candidate(raw, "hi", ("text", 0, 0))
    assert found is not None
    shape = found[0]
    events = [raw.replace(b":41}", n) for n in (b":42}", b":0}", b":007}",
                                                 b":1234567890123456}")]
    events += [raw.replace(b"RVeF8c", pad) for pad in (b"", b"a+/=_-9", b"a b", b"x" * 513)]
    events.append(raw.replace(b'"item_id":"m"', b'"item_id":"n"'))
    *_, kinds, _ = framed(b"".join(events), table(shape))
    # a leading zero, past 15 digits, padding out of its shape, another id: the general path
    assert kinds == [0, 0, -1, -1, 0, 0, -1, -1, -1]


def test_a_shape_is_refused_when_the_text_is_not_one_unique_value() -> None:
    raw = b'data: {"model":"m","choices":[{"index":0,"delta":{"content":"m"}}]}\n\n'
    assert shape_candidate(raw, "m", ("content", 0)) is None
    assert shape_candidate(raw.replace(b"\n\n", b"\r\n\r\n"), "x", ("content", 0)) is None


def plan(action: str = "redact"):  # type: ignore[no-untyped-def]
    result = plan_for((ScanRule("secrets", action),), enforcing=True)
    assert result is not None
    return result


def chat_stream(pieces: list[str]) -> bytes:
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    events += [{**base, "choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    body = b"".join(b"data: " + json.dumps(e, separators=(",", ":")).encode() + b"\n\n"
                    for e in events)
    return body + b"data: [DONE]\n\n"


def test_after_one_token_event_the_rest_of_the_stream_skips_the_json_parser(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    reads = []
    read = CHAT.read_event
    monkeypatch.setattr(CHAT, "read_event", lambda e: reads.append(e) or read(e))
    data = chat_stream([f"word {i} " for i in range(200)])
    guard = SseGuard(CHAT, plan())
    out = b"".join(guard.feed(data[i : i + 500]) for i in range(0, len(data), 500))
    assert out + guard.finish() == data
    assert guard.events == 203
    # the role chunk, the first token event (which teaches the shape), the finish, [DONE]
    assert len(reads) <= 6


def test_switched_off_every_event_takes_the_general_path(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    reads = []
    read = CHAT.read_event
    monkeypatch.setattr(CHAT, "read_event", lambda e: reads.append(e) or read(e))
    data = chat_stream([f"word {i} " for i in range(50)])
    guard = SseGuard(CHAT, plan(), fast_lane=False)
    assert guard.feed(data) + guard.finish() == data
    assert len(reads) == 53


def test_a_secret_split_across_fast_lane_events_is_redacted_and_only_its_events_rebuilt() -> None:
    key = "AKIAQ3EGUKZW5XYT7M2P"
    pieces = ["plain ", "words ", key[:5], key[5:12], key[12:], " and more ", "text."]
    data = chat_stream(pieces)
    guard = SseGuard(CHAT, plan())
    out = b"".join(guard.feed(data[i : i + 1]) for i in range(len(data))) + guard.finish()
    assert key.encode() not in out
    assert b'"content":"words "' in out and b'"content":"text."' in out  # untouched, as sent
    assert b"[REDACTED:aws-access-key-id]" in out
    assert guard._shapes.shapes  # the fast lane was on


def test_a_crlf_event_hands_the_stream_to_the_general_parser_for_good() -> None:
    data = chat_stream(["a ", "b ", "c "])
    crlf = data.replace(b'"content":"b "}}]}\n\n', b'"content":"b "}}]}\r\n\r\n')
    guard = SseGuard(CHAT, plan())
    cut = crlf.index(b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
                     b'"choices":[{"index":0,"delta":{"content":"b "')
    out = guard.feed(crlf[:cut])
    assert guard._shapes.shapes and guard._fast
    assert out + guard.feed(crlf[cut:]) + guard.finish() == crlf
    assert not guard._fast


def test_a_stream_of_many_blocks_keeps_its_latest_shapes() -> None:
    def ev(payload: dict) -> bytes:
        data = json.dumps(payload, separators=(",", ":"))
        return f"event: {payload['type']}\ndata: {data}\n\n".encode()

    body = ev({"type": "message_start", "message": {
        "id": "m", "type": "message", "role": "assistant", "model": "c", "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 1,
                                                              "output_tokens": 1}}})
    for index in range(40):
        body += ev({"type": "content_block_start", "index": index,
                    "content_block": {"type": "text", "text": ""}})
        for word in ("one ", "two ", "three "):
            body += ev({"type": "content_block_delta", "index": index,
                        "delta": {"type": "text_delta", "text": word}})
        body += ev({"type": "content_block_stop", "index": index})
    body += ev({"type": "message_stop"})
    guard = SseGuard(ANTHROPIC, plan())
    out = b"".join(guard.feed(body[i : i + 300]) for i in range(0, len(body), 300))
    assert out + guard.finish() == body
    assert len(guard._shapes) == 16 and guard._shapes.channels[-1] == ("text", 39)
