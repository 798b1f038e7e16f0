"""The OpenAI Responses adapter against real-looking transcripts and the SDK's types."""

from __future__ import annotations

import json

import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter
from transcripts import document, events

from extproc.llm import BadResponseBody, Delta, OpenAIResponses, Usage
from extproc.sse import SseEvent

RESPONSES = OpenAIResponses()
STREAM_EVENT: TypeAdapter[ResponseStreamEvent] = TypeAdapter(ResponseStreamEvent)
TRANSCRIPT = "openai_responses_stream.sse"
TEXT = "Card on file: 4111 1111 1111 1111 — I'll look it up."
ARGS = '{"order_id":"ORD-1234"}'


def test_stream_deltas_add_up_to_each_channels_text() -> None:
    texts: dict[tuple[object, ...], str] = {}
    for event in events(TRANSCRIPT):
        for delta in RESPONSES.response_deltas(event):
            texts[delta.channel] = texts.get(delta.channel, "") + delta.text
    assert texts == {("text", 0, 0): TEXT, ("arguments", 1): ARGS}


# (event type, snapshots it reports)
SNAPSHOTS = [
    ("response.created", ()),
    ("response.content_part.added", ()),  # an opening text is a delta: see below
    ("response.output_text.done", (Delta(("text", 0, 0), TEXT),)),
    ("response.content_part.done", (Delta(("text", 0, 0), TEXT),)),
    ("response.function_call_arguments.done", (Delta(("arguments", 1), ARGS),)),
    ("response.completed", (Delta(("text", 0, 0), TEXT), Delta(("arguments", 1), ARGS))),
]


@pytest.mark.parametrize(("event_type", "expected"), SNAPSHOTS)
def test_events_that_repeat_whole_texts_report_them_as_snapshots(
    event_type: str, expected: tuple[Delta, ...]
) -> None:
    [event] = [e for e in events(TRANSCRIPT) if e.event == event_type]
    assert RESPONSES.read_event(event).snapshots == expected


def test_output_items_report_done_texts_as_snapshots_and_opening_texts_as_deltas() -> None:
    items = [
        e for e in events(TRANSCRIPT) if e.event and e.event.startswith("response.output_item")
    ]
    views = [RESPONSES.read_event(e) for e in items]
    assert [v.snapshots for v in views] == [
        (),
        (Delta(("text", 0, 0), TEXT),),
        (),
        (Delta(("arguments", 1), ARGS),),
    ]
    assert ("arguments", 1) in views[2].paths  # the opening "" stays addressable


def test_an_opening_parts_text_continues_its_channel() -> None:
    added = SseEvent.build(
        '{"type":"response.content_part.added","output_index":0,"content_index":0,'
        '"part":{"type":"output_text","text":"AKIA","annotations":[]}}',
        event="response.content_part.added",
    )
    assert RESPONSES.read_event(added).deltas == (Delta(("text", 0, 0), "AKIA"),)


def test_usage_and_terminal_come_from_response_completed() -> None:
    views = [RESPONSES.read_event(e) for e in events(TRANSCRIPT)]
    assert [v.usage for v in views if v.usage] == [Usage(input_tokens=88, output_tokens=41)]
    assert [v.terminal for v in views] == [False] * (len(views) - 1) + [True]


def test_rewriting_with_the_same_text_returns_the_original_event() -> None:
    for event in events(TRANSCRIPT):
        view = RESPONSES.read_event(event)
        assert RESPONSES.rewrite_event(view, {d.channel: d.text for d in view.texts}) is event


def test_every_text_of_every_event_can_be_rewritten_and_still_validates() -> None:
    redacted = {
        ("text", 0, 0): TEXT.replace("4111 1111 1111 1111", "[card]"),
        ("arguments", 1): "{}",
    }
    out = []
    for event in events(TRANSCRIPT):
        view = RESPONSES.read_event(event)
        new = {d.channel: "" for d in view.deltas}
        new.update({d.channel: redacted[d.channel] for d in view.snapshots if d.text})
        rewritten = RESPONSES.rewrite_event(view, new)
        STREAM_EVENT.validate_python(json.loads(rewritten.data or ""))
        assert rewritten.event == event.event
        out.append(rewritten)
    whole = "".join(e.data or "" for e in out)
    assert "4111" not in whole and "ORD-1234" not in whole
    final = RESPONSES.read_event(out[-1])
    assert final.snapshots == (
        Delta(("text", 0, 0), redacted["text", 0, 0]),
        Delta(("arguments", 1), "{}"),
    )


@pytest.mark.parametrize("channel", [("text", 0, 0), ("arguments", 1)])
def test_a_continuation_copies_its_delta_template(channel: tuple[str | int, ...]) -> None:
    [template] = [
        e
        for e in events(TRANSCRIPT)
        if (d := RESPONSES.response_deltas(e)) and d[0].channel == channel
    ][-1:]
    made = RESPONSES.event_with_text(template, channel, "tail")
    payload = json.loads(made.data or "")
    STREAM_EVENT.validate_python(payload)
    assert made.event == template.event
    assert RESPONSES.response_deltas(made) == [Delta(channel, "tail")]
    original = json.loads(template.data or "")
    assert {k: v for k, v in payload.items() if k != "delta"} == {
        k: v for k, v in original.items() if k != "delta"
    }


def test_a_continuation_needs_a_delta_template_of_the_same_kind() -> None:
    created = events(TRANSCRIPT)[0]
    with pytest.raises(ValueError, match="template is needed"):
        RESPONSES.event_with_text(created, ("text", 0, 0), "x")


# (name, data, expected error)
UPSTREAM_ERRORS = [
    (
        "documented flat shape",
        '{"type":"error","code":"x","message":"flat","param":null,"sequence_number":3}',
        "flat",
    ),
    (
        "live nested shape",
        '{"type":"error","error":{"type":"too_many_requests","code":"x","message":"nested"},"sequence_number":2}',
        "nested",
    ),
    (
        "response.failed",
        '{"type":"response.failed","sequence_number":9,"response":{"id":"r","status":"failed",'
        '"error":{"code":"server_error","message":"boom"},"output":[]}}',
        "boom",
    ),
]


@pytest.mark.parametrize(
    ("name", "data", "message"), UPSTREAM_ERRORS, ids=[c[0] for c in UPSTREAM_ERRORS]
)
def test_upstream_errors_are_reported(name: str, data: str, message: str) -> None:
    event_name = json.loads(data)["type"]
    assert RESPONSES.read_event(SseEvent.build(data, event=event_name)).error == message


@pytest.mark.parametrize(
    "data",
    [
        '{"type":"response.output_text.delta","output_index":0,"content_index":0,"delta":"x"}',
        '{"output_index":0,"content_index":0,"delta":"x"}',
    ],
    ids=["mismatch", "type only in event:"],
)
def test_an_event_whose_type_disagrees_with_its_sse_name_is_refused(data: str) -> None:
    with pytest.raises(BadResponseBody):
        RESPONSES.read_event(SseEvent.build(data, event="response.refusal.delta"))


@pytest.mark.parametrize("index", ['"0"', "0.0", "false", "-1", None])
def test_a_malformed_position_is_refused_not_guessed(index: str | None) -> None:
    field = "" if index is None else f',"output_index":{index}'
    data = '{"type":"response.output_text.delta","content_index":0,"delta":"x"' + field + "}"
    with pytest.raises(BadResponseBody):
        RESPONSES.read_event(SseEvent.build(data))


def test_invalid_json_is_a_bad_response_body() -> None:
    with pytest.raises(BadResponseBody):
        RESPONSES.read_event(SseEvent.build('{"type":"response.output_text.delta",'))


def test_error_events_are_error_then_a_failed_response_modelled_on_the_created_one() -> None:
    views = [RESPONSES.read_event(e) for e in events(TRANSCRIPT)[:5]]
    error, failed = RESPONSES.error_events(
        "blocked", "weir_response_blocked", first=views[0], last=views[-1]
    )
    assert (error.event, failed.event) == ("error", "response.failed")
    error_payload = json.loads(error.data or "")
    STREAM_EVENT.validate_python(error_payload)
    assert error_payload["sequence_number"] == 5
    assert error_payload["message"] == error_payload["error"]["message"] == "blocked"
    failed_payload = json.loads(failed.data or "")
    STREAM_EVENT.validate_python(failed_payload)
    response = failed_payload["response"]
    assert response["id"] == json.loads(events(TRANSCRIPT)[0].data or "")["response"]["id"]
    assert (response["status"], response["output"], response["error"]["message"]) == (
        "failed",
        [],
        "blocked",
    )
    assert RESPONSES.read_event(failed).terminal


def test_error_events_without_context_still_make_a_failed_event() -> None:
    error, failed = RESPONSES.error_events("blocked", "c")
    assert json.loads(error.data or "")["sequence_number"] == 0
    assert json.loads(failed.data or "")["response"]["status"] == "failed"


REQUEST_PARTS = [
    (("instructions",), "You are a support agent. Secret: sk-proj-instructions", "system"),
    (("input", 0, "content"), "Where is order ORD-1234?", "message"),
    (("input", 1, "content", 0, "text"), "My email is jane@example.com", "message"),
    (("input", 2, "content", 0, "text"), "Let me look.", "assistant"),
    (("input", 3, "arguments"), '{"order_id":"ORD-1234"}', "tool_arguments"),
    (("input", 4, "output"), "shipped to 1 Main St", "tool_result"),
    (("input", 5, "output", 0, "text"), "tracking 1Z999", "tool_result"),
]


def test_request_texts_lists_every_text_with_its_locator_and_kind() -> None:
    parts = RESPONSES.request_texts(document("openai_responses_request.json"))
    assert [(p.locator, p.text, p.kind) for p in parts] == REQUEST_PARTS


def test_input_may_be_a_plain_string() -> None:
    parts = RESPONSES.request_texts({"model": "m", "input": "hello"})
    assert [(p.locator, p.text) for p in parts] == [(("input",), "hello")]
    body = RESPONSES.rewrite_request({"model": "m", "input": "hello"}, {("input",): "bye"})
    assert json.loads(body) == {"model": "m", "input": "bye"}


def test_rewrite_request_replaces_texts_and_keeps_the_rest() -> None:
    original = document("openai_responses_request.json")
    replacements = {p.locator: "[x]" for p in RESPONSES.request_texts(original)}
    rewritten = json.loads(RESPONSES.rewrite_request(original, replacements))
    assert [p.text for p in RESPONSES.request_texts(rewritten)] == ["[x]"] * len(REQUEST_PARTS)
    assert rewritten["input"][6] == original["input"][6]  # type: ignore[index]
    assert rewritten["tools"] == original["tools"]


def test_response_texts_and_rewrite_response_cover_text_and_arguments() -> None:
    body = document("openai_responses_response.json")
    parts = RESPONSES.response_texts(body)
    assert [(p.locator, p.text, p.kind) for p in parts] == [
        (("output", 0, "content", 0, "text"), TEXT, "output"),
        (("output", 1, "arguments"), ARGS, "tool_arguments"),
    ]
    rewritten = json.loads(RESPONSES.rewrite_response(body, {parts[0].locator: "[card]"}))
    Response.model_validate(rewritten)
    assert rewritten["output"][0]["content"][0]["text"] == "[card]"
    assert RESPONSES.usage(body) == Usage(input_tokens=88, output_tokens=41)
