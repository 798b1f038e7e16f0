"""Usage read from responses that flow through unscanned (no response rules)."""

from __future__ import annotations

import json

import pytest

from extproc.llm import AnthropicMessages, OpenAIChatCompletions, OpenAIResponses
from extproc.llm.base import Usage
from extproc.usage_meter import UsageMeter


def sse(*payloads: object, event_names: tuple[str, ...] = ()) -> bytes:
    out = []
    for i, payload in enumerate(payloads):
        head = f"event: {event_names[i]}\n" if event_names else ""
        data = payload if isinstance(payload, str) else json.dumps(payload)
        out.append(f"{head}data: {data}\n\n")
    return "".join(out).encode()


CHAT_STREAM = sse(
    {"id": "c", "object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": {"content": "hello"}, "finish_reason": None}]},
    {"id": "c", "object": "chat.completion.chunk", "choices": [],
     "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}},
    "[DONE]",
)

ANTHROPIC_STREAM = sse(
    {"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant",
     "content": [], "model": "claude", "usage": {"input_tokens": 25, "output_tokens": 1}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 15}},
    {"type": "message_stop"},
    event_names=("message_start", "content_block_start", "content_block_delta",
                 "content_block_stop", "message_delta", "message_stop"),
)


def fed_in_pieces(meter: UsageMeter, body: bytes, size: int) -> Usage | None:
    for at in range(0, len(body), size):
        meter.feed(body[at : at + size])
    return meter.finish()


@pytest.mark.parametrize("size", [1, 7, 4096])
def test_openai_chat_stream_usage_whatever_the_chunking(size: int) -> None:
    meter = UsageMeter(OpenAIChatCompletions(), event_stream=True, max_body=1 << 20)
    assert fed_in_pieces(meter, CHAT_STREAM, size) == Usage(11, 7)


@pytest.mark.parametrize("size", [1, 13, 4096])
def test_anthropic_running_output_count_is_merged(size: int) -> None:
    meter = UsageMeter(AnthropicMessages(), event_stream=True, max_body=1 << 20)
    assert fed_in_pieces(meter, ANTHROPIC_STREAM, size) == Usage(25, 15)


def test_responses_api_completed_event_usage() -> None:
    body = sse(
        {"type": "response.output_text.delta", "item_id": "i", "output_index": 0,
         "content_index": 0, "delta": "hi", "sequence_number": 1},
        {"type": "response.completed", "sequence_number": 2, "response": {
            "id": "r", "object": "response", "status": "completed", "output": [],
            "usage": {"input_tokens": 9, "output_tokens": 4, "total_tokens": 13}}},
        event_names=("response.output_text.delta", "response.completed"),
    )
    meter = UsageMeter(OpenAIResponses(), event_stream=True, max_body=1 << 20)
    assert fed_in_pieces(meter, body, 5) == Usage(9, 4)


def test_a_json_answer_is_read_whole() -> None:
    body = json.dumps({"id": "c", "object": "chat.completion", "choices": [],
                       "usage": {"prompt_tokens": 3, "completion_tokens": 2}}).encode()
    meter = UsageMeter(OpenAIChatCompletions(), event_stream=False, max_body=1 << 20)
    assert fed_in_pieces(meter, body, 10) == Usage(3, 2)


def test_a_json_answer_past_the_limit_is_not_kept() -> None:
    body = json.dumps({"usage": {"prompt_tokens": 3, "completion_tokens": 2},
                       "pad": "x" * 100}).encode()
    meter = UsageMeter(OpenAIChatCompletions(), event_stream=False, max_body=50)
    assert fed_in_pieces(meter, body, 10) is None


@pytest.mark.parametrize("body", [b"data: {not json usage}\n\n", b"\xff\xfe usage\n\n", b""])
def test_what_cannot_be_read_leaves_usage_unknown(body: bytes) -> None:
    meter = UsageMeter(OpenAIChatCompletions(), event_stream=True, max_body=1 << 20)
    assert fed_in_pieces(meter, body, 3) is None


@pytest.mark.parametrize("size", [1, 2, 5, 4096])
def test_crlf_streams_and_a_last_event_without_its_blank_line(size: int) -> None:
    body = CHAT_STREAM.replace(b"\n", b"\r\n").removesuffix(b"data: [DONE]\r\n\r\n")
    body = body.removesuffix(b"\r\n\r\n")
    meter = UsageMeter(OpenAIChatCompletions(), event_stream=True, max_body=1 << 20)
    assert fed_in_pieces(meter, body, size) == Usage(11, 7)


def test_an_endless_event_is_given_up() -> None:
    meter = UsageMeter(OpenAIChatCompletions(), event_stream=True, max_body=1 << 30)
    meter.feed(b'data: {"usage": "' + b"x" * (2 << 20))
    meter.feed(b'"}\n\n' + CHAT_STREAM)
    assert meter.finish() is None


@pytest.mark.parametrize(("provider", "body"), [
    (OpenAIChatCompletions(), CHAT_STREAM), (AnthropicMessages(), ANTHROPIC_STREAM),
])
def test_the_end_of_stream_event_is_noticed_before_the_body_ends(provider, body: bytes) -> None:
    meter = UsageMeter(provider, event_stream=True, max_body=1 << 20)
    meter.feed(body[:-3])
    assert not meter.saw_terminal
    meter.feed(body[-3:])
    assert meter.saw_terminal and meter.usage is not None


def test_an_unscanned_chat_stream_still_says_which_model_answered_and_why_it_stopped() -> None:
    body = sse(
        {"id": "c", "model": "gpt-4o-x", "choices": [
            {"index": 0, "delta": {"content": "hello"}, "finish_reason": None}]},
        {"id": "c", "model": "gpt-4o-x", "choices": [
            {"index": 0, "delta": {}, "finish_reason": "length"}]},
        "[DONE]",
    )
    meter = UsageMeter(OpenAIChatCompletions(), event_stream=True, max_body=1 << 20)
    for i in range(0, len(body), 7):
        meter.feed(body[i : i + 7])
    meter.finish()
    assert (meter.facts.model, meter.facts.finish_reasons) == ("gpt-4o-x", ["length"])


def test_an_unscanned_anthropic_stream_says_its_model_and_stop_reason() -> None:
    meter = UsageMeter(AnthropicMessages(), event_stream=True, max_body=1 << 20)
    meter.feed(ANTHROPIC_STREAM)
    meter.finish()
    assert (meter.facts.model, meter.facts.finish_reasons) == ("claude", ["end_turn"])
