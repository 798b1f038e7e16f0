"""The response token-stream guard, driven with SSE bytes: no Envoy, no sockets."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc.llm import PROVIDERS
from extproc.scan_plan import plan_for
from extproc.sse import SseParser
from extproc.sse_guard import SseGuard
from mesh.policy import ScanRule

CHAT = next(p for p in PROVIDERS if p.name == "openai.chat_completions")
ANTHROPIC = next(p for p in PROVIDERS if p.name == "anthropic.messages")
AWS_KEY = "AKIAQ3EGUKZW5XYT7M2P"
TEXT = f"Deploy with {AWS_KEY} and call +1 415 555 0134 or mail ops@example.org today."


def plan(**actions: str):
    rules = tuple(ScanRule(name.replace("_", "-"), action) for name, action in actions.items())
    result = plan_for(rules, enforcing=True)
    assert result is not None
    return result


def chat_stream(pieces: list[str]) -> bytes:
    events = [{"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                            "finish_reason": None}]}]
    for piece in pieces:
        events.append({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [{"index": 0, "delta": {"content": piece},
                                    "finish_reason": None}]})
    events.append({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    return body + b"data: [DONE]\n\n"


def anthropic_stream(pieces: list[str]) -> bytes:
    def event(name: str, payload: dict) -> bytes:
        return f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode()

    out = event("message_start", {"type": "message_start", "message": {
        "id": "m1", "type": "message", "role": "assistant", "model": "c", "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 7, "output_tokens": 1}}})
    out += event("content_block_start", {"type": "content_block_start", "index": 0,
                                         "content_block": {"type": "text", "text": ""}})
    out += event("ping", {"type": "ping"})
    for piece in pieces:
        out += event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                             "delta": {"type": "text_delta", "text": piece}})
    out += event("content_block_stop", {"type": "content_block_stop", "index": 0})
    out += event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                   "usage": {"output_tokens": len(pieces)}})
    return out + event("message_stop", {"type": "message_stop"})


def run_guard(guard: SseGuard, data: bytes, chunk_sizes: list[int]) -> bytes:
    out, offset, i = [], 0, 0
    while offset < len(data):
        size = chunk_sizes[i % len(chunk_sizes)] if chunk_sizes else len(data)
        out.append(guard.feed(data[offset : offset + size]))
        offset += size
        i += 1
    out.append(guard.finish())
    return b"".join(out)


def received_text(provider, data: bytes) -> tuple[str, list]:
    parser = SseParser()
    events = parser.feed(data) + parser.finish()
    views = [provider.read_event(e) for e in events]
    return "".join(d.text for v in views for d in v.deltas), views


def pieces_of(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points) if b > a]


REDACT_BOTH = {"secrets": "redact", "pii": "redact"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(0, 200), max_size=30),
       chunks=st.lists(st.integers(1, 97), max_size=8))
def test_any_split_of_the_stream_releases_exactly_the_offline_redaction(
    cuts: list[int], chunks: list[int]
) -> None:
    the_plan = plan(**REDACT_BOTH)
    guard = SseGuard(CHAT, the_plan)
    out = run_guard(guard, chat_stream(pieces_of(TEXT, cuts)), chunks)
    text, views = received_text(CHAT, out)
    assert text == the_plan.scanner.redact(TEXT)
    assert AWS_KEY not in out.decode()
    assert views[-1].terminal
    assert views[-2].payload["choices"][0]["finish_reason"] == "stop"


def test_one_character_per_event_is_redacted_exactly() -> None:
    the_plan = plan(**REDACT_BOTH)
    out = run_guard(SseGuard(CHAT, the_plan), chat_stream(list(TEXT)), [5])
    assert received_text(CHAT, out)[0] == the_plan.scanner.redact(TEXT)


@pytest.mark.parametrize("piece", [1, 4, 1000])
def test_anthropic_streams_are_redacted_and_keep_their_event_order(piece: int) -> None:
    the_plan = plan(**REDACT_BOTH)
    pieces = [TEXT[i : i + piece] for i in range(0, len(TEXT), piece)]
    out = run_guard(SseGuard(ANTHROPIC, the_plan), anthropic_stream(pieces), [13])
    text, views = received_text(ANTHROPIC, out)
    assert text == the_plan.scanner.redact(TEXT)
    kinds = [v.payload["type"] for v in views if isinstance(v.payload, dict)]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]


def test_a_block_releases_only_text_before_the_match_then_the_error_and_terminator() -> None:
    guard = SseGuard(CHAT, plan(secrets="block"))
    out = run_guard(guard, chat_stream(list(TEXT)), [7])
    text, views = received_text(CHAT, out)
    assert TEXT.startswith(text)
    assert len(text) <= TEXT.index(AWS_KEY)
    assert views[-1].terminal
    error = views[-2].payload["error"]
    assert error["code"] == "weir_response_blocked"
    assert "aws-access-key-id" in error["message"]
    assert guard.blocked_by is not None and guard.blocked_by.rule == "aws-access-key-id"
    assert AWS_KEY[:6] not in out.decode()


def test_an_audit_only_plan_changes_no_byte_for_any_chunking() -> None:
    data = chat_stream(list(TEXT))
    for sizes in ([1], [3, 11], [len(data)]):
        guard = SseGuard(CHAT, plan(secrets="audit", pii="audit"))
        assert run_guard(guard, data, sizes) == data
        assert {f.rule for f in guard.findings} >= {"aws-access-key-id"}


@pytest.mark.parametrize(
    "bad",
    [b"data: {not json\n\n", b"data: \xff\xfe\n\n", b"data: [1, 2]\n\n"],
    ids=["invalid-json", "invalid-utf8", "not-an-object"],
)
def test_a_malformed_event_ends_an_enforcing_stream_with_the_providers_error(bad: bytes) -> None:
    guard = SseGuard(CHAT, plan(secrets="redact"))
    data = chat_stream(["safe text "]).replace(b"data: [DONE]\n\n", b"") + bad
    data += chat_stream([AWS_KEY])
    out = run_guard(guard, data, [10])
    assert guard.failure is not None
    _, views = received_text(CHAT, out)
    assert AWS_KEY not in out.decode()
    assert views[-2].payload["error"]["code"] == "weir_stream_error"
    assert views[-1].terminal


def test_a_huge_single_line_ends_the_stream_instead_of_growing_without_bound() -> None:
    guard = SseGuard(CHAT, plan(secrets="redact"), max_event_bytes=4096)
    out = run_guard(guard, b"data: " + b"a" * 100_000, [1000])
    assert guard.failure is not None
    assert b"weir_stream_error" in out


def test_held_bytes_stay_within_the_scanners_bound() -> None:
    the_plan = plan(**REDACT_BOTH)
    guard = SseGuard(CHAT, the_plan)
    bound = the_plan.stream().max_hold_bytes
    for event in chat_stream(list(TEXT * 3)).split(b"\n\n"):
        guard.feed(event + b"\n\n")
        assert guard.held_bytes <= bound + 1024  # plus at most one incomplete SSE event


def test_usage_is_read_from_the_stream() -> None:
    guard = SseGuard(ANTHROPIC, plan(secrets="redact"))
    run_guard(guard, anthropic_stream(["a", "b", "c"]), [50])
    assert guard.usage.input_tokens == 7
    assert guard.usage.output_tokens == 3


def test_a_deny_list_from_policy_is_redacted_across_events() -> None:
    rules = (ScanRule("deny-list", "redact", ("Project Falcon",)), ScanRule("secrets", "block"))
    the_plan = plan_for(rules, enforcing=True)
    assert the_plan is not None
    text = "Status of project  FALCON: green."
    out = run_guard(SseGuard(CHAT, the_plan), chat_stream(list(text)), [9])
    assert received_text(CHAT, out)[0] == "Status of [REDACTED:deny-list]: green."


# --- whole events held back, sent as they came --------------------------------------


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_a_stream_with_nothing_to_change_goes_out_byte_for_byte(chunk: int) -> None:
    pieces = ["The ", "river ", "runs ", "to ", "the ", "sea, ", "AKIA", " is no key."]
    data = chat_stream(pieces)
    guard = SseGuard(CHAT, plan(secrets="redact", pii="redact"))
    assert run_guard(guard, data, [chunk]) == data
    data = anthropic_stream(pieces)
    guard = SseGuard(ANTHROPIC, plan(secrets="redact", pii="redact"))
    assert run_guard(guard, data, [chunk]) == data


def test_an_event_goes_out_only_once_all_its_text_is_released() -> None:
    guard = SseGuard(CHAT, plan(secrets="redact"))
    events = SseParser().feed(chat_stream(["plain ", "AKIAQ3", " words"]))
    outputs = [guard.feed(event.raw) for event in events]
    assert outputs[1] == events[1].raw  # released whole: its own bytes
    assert outputs[2] == b""  # "AKIAQ3" may still become a key: the event is held whole
    assert outputs[3] == events[2].raw  # no longer: it goes out unchanged, in order
    assert outputs[4] == events[3].raw + events[4].raw  # the tail, before the finish chunk


def test_only_the_event_a_redaction_touches_is_rebuilt() -> None:
    guard = SseGuard(CHAT, plan(secrets="redact"))
    events = SseParser().feed(chat_stream(["plain ", AWS_KEY[:8], AWS_KEY[8:], " words"]))
    out = b"".join(guard.feed(event.raw) for event in events) + guard.finish()
    assert out.startswith(events[0].raw + events[1].raw)
    assert out.endswith(events[-2].raw + events[-1].raw)  # the finish chunk, [DONE]
    assert out.count(b"\n\n") == len(events) - 1  # the key's two events went out as one
    text, _ = received_text(CHAT, out)
    assert text == "plain [REDACTED:aws-access-key-id] words"


def test_an_event_whose_text_is_all_held_is_not_sent_empty() -> None:
    # "AKIAQ3" could still become a key: none of it is released, and no empty event goes out.
    guard = SseGuard(CHAT, plan(secrets="redact"))
    parser = SseParser()
    events = parser.feed(chat_stream(["plain words ", AWS_KEY[:6], AWS_KEY[6:], " ok"]))
    outputs = [guard.feed(event.raw) for event in events]
    assert b"plain words" in outputs[1]
    assert outputs[2] == b""  # all held
    assert AWS_KEY[:6].encode() not in b"".join(outputs)
    text, _ = received_text(CHAT, b"".join(outputs) + guard.finish())
    assert text == "plain words [REDACTED:aws-access-key-id] ok"


def test_text_events_that_carry_more_than_text_stay_whole() -> None:
    events = [
        {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {
            "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                            "function": {"name": "lookup", "arguments": "{\"q\""}}]},
            "finish_reason": None}]},
        {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {
            "tool_calls": [{"index": 0, "function": {"arguments": ": \"rivers\"}"}}]},
            "finish_reason": None}]},
        {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {
            "content": "done"}, "logprobs": {"content": []}, "finish_reason": None}]},
    ]
    body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    guard = SseGuard(CHAT, plan(secrets="redact"))
    out = run_guard(guard, body + b"data: [DONE]\n\n", [])
    _, views = received_text(CHAT, out)
    calls = [v.payload["choices"][0]["delta"].get("tool_calls") for v in views if v.payload]
    assert calls[0][0]["id"] == "call_1" and calls[0][0]["function"]["name"] == "lookup"
    assert "".join(c[0]["function"]["arguments"] for c in calls if c) == '{"q": "rivers"}'
    assert any(v.payload and "logprobs" in v.payload["choices"][0] for v in views)


@pytest.mark.parametrize("chunk", [1, 17, 64, 1 << 20])
def test_coalesced_anthropic_streams_still_redact_exactly(chunk: int) -> None:
    pieces = [TEXT[i : i + 3] for i in range(0, len(TEXT), 3)]
    guard = SseGuard(ANTHROPIC, plan(secrets="redact", pii="redact"))
    out = run_guard(guard, anthropic_stream(pieces), [chunk])
    text, views = received_text(ANTHROPIC, out)
    assert AWS_KEY not in text and "ops@example.org" not in text
    assert text.startswith("Deploy with [REDACTED:") and text.endswith(" today.")
    assert views[-1].terminal


def test_released_text_is_remembered_only_for_an_api_that_repeats_it() -> None:
    # Chat and Anthropic never repeat a streamed text: a long answer costs no memory here.
    guard = SseGuard(CHAT, plan(secrets="redact"))
    run_guard(guard, chat_stream(["word "] * 200), [64])
    assert not guard._released
    responses = next(p for p in PROVIDERS if p.name == "openai.responses")
    assert responses.repeats_streamed_text and not CHAT.repeats_streamed_text
