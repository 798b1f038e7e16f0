"""The Anthropic Messages adapter against real-looking transcripts and the SDK's types."""

from __future__ import annotations

import json

import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent
from pydantic import TypeAdapter
from transcripts import document, events

from extproc.llm import AnthropicMessages, BadResponseBody, Delta, Usage
from extproc.sse import SseEvent, serialize

ANTHROPIC = AnthropicMessages()
STREAM_EVENT: TypeAdapter[RawMessageStreamEvent] = TypeAdapter(RawMessageStreamEvent)
TRANSCRIPT = "anthropic_stream.sse"


def test_stream_deltas_add_up_to_each_content_blocks_text() -> None:
    texts: dict[tuple[object, ...], str] = {}
    for event in events(TRANSCRIPT):
        for delta in ANTHROPIC.response_deltas(event):
            texts[delta.channel] = texts.get(delta.channel, "") + delta.text
    assert texts == {
        ("text", 0): "Okay, let me check the weather for San Francisco – ☀️?",
        ("tool_input", 1): '{"location": "San Francisco, CA"}',
    }


def test_usage_is_input_from_message_start_and_output_from_message_delta() -> None:
    usage = Usage()
    reported = []
    for event in events(TRANSCRIPT):
        found = ANTHROPIC.usage(event)
        if found is not None:
            reported.append(found)
        usage = usage.merged(found)
    assert reported == [Usage(472, 2), Usage(None, 89)]
    assert usage == Usage(input_tokens=472, output_tokens=89)


def test_only_message_stop_is_terminal() -> None:
    flags = [ANTHROPIC.is_terminal(e) for e in events(TRANSCRIPT)]
    assert flags == [False] * (len(flags) - 1) + [True]


def test_a_text_blocks_start_opens_its_channel_with_its_initial_text() -> None:
    view = ANTHROPIC.read_event(events(TRANSCRIPT)[1])
    assert view.snapshots == ()
    assert view.deltas == ()  # "" is addressable, not reported
    assert ("text", 0) in view.paths
    started = SseEvent.build(
        '{"type":"content_block_start","index":2,"content_block":{"type":"text","text":"AKIA"}}',
        event="content_block_start",
    )
    assert ANTHROPIC.read_event(started).deltas == (Delta(("text", 2), "AKIA"),)


def test_rewriting_with_the_same_text_returns_the_original_event() -> None:
    for event in events(TRANSCRIPT):
        view = ANTHROPIC.read_event(event)
        assert ANTHROPIC.rewrite_event(view, {d.channel: d.text for d in view.texts}) is event


def test_rewritten_events_validate_and_keep_the_event_line() -> None:
    for event in events(TRANSCRIPT):
        view = ANTHROPIC.read_event(event)
        if not view.deltas:
            continue
        new = {d.channel: d.text[::-1] + '"\\' for d in view.deltas}
        rewritten = ANTHROPIC.rewrite_event(view, new)
        STREAM_EVENT.validate_python(json.loads(rewritten.data or ""))
        assert rewritten.event == "content_block_delta"
        assert serialize(rewritten).startswith(b"event: content_block_delta\n")
        assert {d.channel: d.text for d in ANTHROPIC.response_deltas(rewritten)} == new


def accumulate(stream: list[SseEvent]) -> Message:
    snapshot = None
    buffers: dict[int, bytes] = {}
    for event in stream:
        if event.event in (None, "ping"):
            continue
        parsed = STREAM_EVENT.validate_python(json.loads(event.data or ""))
        snapshot = accumulate_event(event=parsed, current_snapshot=snapshot, json_bufs=buffers)
    assert snapshot is not None
    return snapshot


def test_splitting_each_delta_into_a_rewrite_and_a_continuation_keeps_the_sdk_message() -> None:
    original = events(TRANSCRIPT)
    split: list[SseEvent] = []
    for event in original:
        view = ANTHROPIC.read_event(event)
        split.append(ANTHROPIC.rewrite_event(view, {d.channel: d.text[:3] for d in view.deltas}))
        for d in view.deltas:
            split.append(ANTHROPIC.event_with_text(view, d.channel, d.text[3:]))
    assert accumulate(split).content == accumulate(original).content


# (channel, expected payload)
CONTINUATIONS = [
    (
        ("text", 0),
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x"}},
    ),
    (
        ("tool_input", 4),
        {
            "type": "content_block_delta",
            "index": 4,
            "delta": {"type": "input_json_delta", "partial_json": "x"},
        },
    ),
]


@pytest.mark.parametrize(("channel", "payload"), CONTINUATIONS)
def test_a_continuation_is_a_content_block_delta_whatever_the_template(
    channel: tuple[str | int, ...], payload: dict[str, object]
) -> None:
    template = events(TRANSCRIPT)[0]  # message_start: any event will do
    made = ANTHROPIC.event_with_text(template, channel, "x")
    assert made.event == "content_block_delta"
    assert json.loads(made.data or "") == payload
    STREAM_EVENT.validate_python(payload)


def test_an_unknown_channel_has_no_continuation() -> None:
    with pytest.raises(KeyError):
        ANTHROPIC.event_with_text(events(TRANSCRIPT)[0], ("citations", 0), "x")


@pytest.mark.parametrize("index", ['"0"', "0.5", "false", None])
def test_a_malformed_block_index_is_refused_not_guessed(index: str | None) -> None:
    field = "" if index is None else f',"index":{index}'
    event = SseEvent.build(
        '{"type":"content_block_delta","delta":{"type":"text_delta","text":"x"}' + field + "}"
    )
    with pytest.raises(BadResponseBody):
        ANTHROPIC.read_event(event)


def test_an_event_named_only_by_its_sse_line_is_refused() -> None:
    event = SseEvent.build(
        '{"index":0,"delta":{"type":"text_delta","text":"x"}}', event="content_block_delta"
    )
    with pytest.raises(BadResponseBody):
        ANTHROPIC.read_event(event)


def test_an_upstream_error_event_is_reported() -> None:
    event = SseEvent.build(
        '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
        event="error",
    )
    assert ANTHROPIC.read_event(event).error == "Overloaded"


def test_thinking_deltas_are_a_channel_and_signatures_are_left_to_the_sweep() -> None:
    thinking = SseEvent.build(
        '{"type":"content_block_delta","index":1,"delta":{"type":"thinking_delta","thinking":"hm"}}'
    )
    assert ANTHROPIC.read_event(thinking).deltas == (Delta(("thinking", 1), "hm"),)
    signature = SseEvent.build(
        '{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"Eq"}}'
    )
    view = ANTHROPIC.read_event(signature)
    assert view.texts == () and view.streaming


def test_invalid_json_is_a_bad_response_body() -> None:
    with pytest.raises(BadResponseBody, match="not valid JSON"):
        ANTHROPIC.read_event(SseEvent.build("{", event="content_block_delta"))


REQUEST_PARTS = [
    (("system", 0, "text"), "You are a helpful assistant.", "system"),
    (("system", 1, "text"), "Internal token: ghp_16C7e42F292c6912E7710c838347Ae178B4a", "system"),
    (("messages", 0, "content"), "What's the weather in San Francisco?", "message"),
    (("messages", 1, "content", 1, "text"), "Let me check.", "assistant"),
    (("messages", 1, "content", 2, "input", "location"), "San Francisco, CA", "tool_arguments"),
    (("messages", 1, "content", 2, "input", "units", 0), "c", "tool_arguments"),
    (("messages", 1, "content", 2, "input", "units", 1), "f", "tool_arguments"),
    (
        ("messages", 2, "content", 0, "content"),
        "15 degrees, key AKIAIOSFODNN7EXAMPLE",
        "tool_result",
    ),
    (("messages", 2, "content", 1, "content", 0, "text"), "windy", "tool_result"),
    (("messages", 2, "content", 2, "source", "data"), "Contract text", "document"),
    (("messages", 2, "content", 3, "text"), "And tomorrow?", "message"),
]


def test_request_texts_lists_every_text_with_its_locator_and_kind() -> None:
    parts = ANTHROPIC.request_texts(document("anthropic_request.json"))
    assert [(p.locator, p.text, p.kind) for p in parts] == REQUEST_PARTS


@pytest.mark.parametrize(
    ("system", "expected"),
    [("Be brief.", [(("system",), "Be brief.", "system")]), (None, []), ([], [])],
)
def test_system_may_be_a_string_or_absent(system: object, expected: list[object]) -> None:
    body: dict[str, object] = {"model": "m", "messages": []}
    if system is not None:
        body["system"] = system
    assert [(p.locator, p.text, p.kind) for p in ANTHROPIC.request_texts(body)] == expected


def test_rewrite_request_keeps_thinking_signatures_and_numbers() -> None:
    original = document("anthropic_request.json")
    replacements = {p.locator: "[redacted]" for p in ANTHROPIC.request_texts(original)}
    rewritten = json.loads(ANTHROPIC.rewrite_request(original, replacements))
    assert all(p.text == "[redacted]" for p in ANTHROPIC.request_texts(rewritten))
    assert rewritten["messages"][1]["content"][0] == original["messages"][1]["content"][0]  # type: ignore[index]
    assert rewritten["messages"][1]["content"][2]["input"]["days"] == 3
    assert rewritten["max_tokens"] == 1024


def test_response_texts_and_rewrite_response_cover_text_and_tool_input() -> None:
    body = document("anthropic_response.json")
    parts = ANTHROPIC.response_texts(body)
    assert [(p.locator, p.kind) for p in parts] == [
        (("content", 0, "text"), "output"),
        (("content", 1, "input", "name"), "tool_arguments"),
        (("content", 1, "input", "value"), "tool_arguments"),
        (("content", 1, "input", "tags", 0), "tool_arguments"),
    ]
    secret = {p.locator: p.text.replace("AKIAIOSFODNN7EXAMPLE", "[aws]") for p in parts}
    rewritten = json.loads(ANTHROPIC.rewrite_response(body, secret))
    Message.model_validate(rewritten)
    assert "AKIA" not in json.dumps(rewritten)
    assert ANTHROPIC.usage(body) == Usage(input_tokens=2095, output_tokens=503)


def test_error_events_are_one_error_event() -> None:
    [error] = ANTHROPIC.error_events("blocked", "weir_response_blocked")
    assert serialize(error) == (
        b'event: error\ndata: {"type":"error",'
        b'"error":{"type":"permission_error","message":"blocked"}}\n\n'
    )
    assert ANTHROPIC.read_event(error).error == "blocked"
