"""The OpenAI Chat Completions adapter against real-looking transcripts and the SDK's types."""

from __future__ import annotations

import json

import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from transcripts import document, events

from extproc.llm import BadResponseBody, Delta, OpenAIChatCompletions, Usage
from extproc.sse import SseEvent, SseParser, serialize

CHAT = OpenAIChatCompletions()


def channel_texts(name: str) -> dict[tuple[object, ...], str]:
    texts: dict[tuple[object, ...], str] = {}
    for event in events(name):
        for delta in CHAT.response_deltas(event):
            texts[delta.channel] = texts.get(delta.channel, "") + delta.text
    return texts


# (fixture, {channel: whole text}, final usage)
STREAMS = [
    (
        "openai_chat_stream.sse",
        {("content", 0): "Your key is AKIAIOSFODNN7EXAMPLE – café ✓"},
        Usage(input_tokens=19, output_tokens=10),
    ),
    (
        "openai_chat_tools_stream.sse",
        {
            ("tool_arguments", 0, 0): '{"location": "Paris"}',
            ("tool_arguments", 0, 1): '{"to": "ops@example.com", '
            '"body": "ghp_16C7e42F292c6912E7710c838347Ae178B4a"}',
        },
        None,
    ),
]


@pytest.mark.parametrize(("name", "expected", "usage"), STREAMS)
def test_stream_deltas_add_up_to_each_channels_text(
    name: str, expected: dict[tuple[object, ...], str], usage: Usage | None
) -> None:
    assert channel_texts(name) == expected
    found = Usage()
    for event in events(name):
        found = found.merged(CHAT.usage(event))
    assert (found if found != Usage() else None) == usage


@pytest.mark.parametrize("name", [s[0] for s in STREAMS])
def test_only_done_is_terminal(name: str) -> None:
    flags = [CHAT.is_terminal(e) for e in events(name)]
    assert flags == [False] * (len(flags) - 1) + [True]
    assert events(name)[-1].data == "[DONE]"


@pytest.mark.parametrize("name", [s[0] for s in STREAMS])
def test_rewriting_with_the_same_text_returns_the_original_event(name: str) -> None:
    for event in events(name):
        view = CHAT.read_event(event)
        same = {d.channel: d.text for d in view.deltas}
        assert CHAT.rewrite_event(view, same) is event


@pytest.mark.parametrize("name", [s[0] for s in STREAMS])
def test_rewritten_chunks_validate_and_carry_the_replacement(name: str) -> None:
    for event in events(name):
        view = CHAT.read_event(event)
        if not view.deltas:
            continue
        new = {d.channel: f'[{d.text.upper()}]\n"ü"' for d in view.deltas}
        rewritten = CHAT.rewrite_event(view, new)
        assert rewritten.data is not None
        ChatCompletionChunk.model_validate(json.loads(rewritten.data))
        assert {d.channel: d.text for d in CHAT.response_deltas(rewritten)} == new
        # Everything but the text is unchanged.
        before, after = json.loads(event.data or ""), json.loads(rewritten.data)
        for choice in after["choices"]:
            for key in ("content", "refusal"):
                if isinstance(choice["delta"].get(key), str):
                    choice["delta"][key] = "*"
            for call in choice["delta"].get("tool_calls") or []:
                call["function"]["arguments"] = "*"
        for choice in before["choices"]:
            for key in ("content", "refusal"):
                if isinstance(choice["delta"].get(key), str):
                    choice["delta"][key] = "*"
            for call in choice["delta"].get("tool_calls") or []:
                call["function"]["arguments"] = "*"
        assert after == before


def accumulate(chunks: list[SseEvent]) -> ChatCompletion:
    state: ChatCompletionStreamState[object] = ChatCompletionStreamState()
    for event in chunks:
        if event.data and not event.data.startswith("[DONE]"):
            state.handle_chunk(ChatCompletionChunk.model_validate(json.loads(event.data)))
    return state.get_final_completion()


@pytest.mark.parametrize("name", [s[0] for s in STREAMS])
def test_splitting_each_delta_into_a_rewrite_and_a_continuation_keeps_the_sdk_message(
    name: str,
) -> None:
    """What the pipeline does when it holds text back: release a prefix, send the rest later."""
    original = events(name)
    split: list[SseEvent] = []
    for event in original:
        view = CHAT.read_event(event)
        if not view.deltas:
            split.append(event)
            continue
        heads = {d.channel: d.text[: len(d.text) // 2] for d in view.deltas}
        split.append(CHAT.rewrite_event(view, heads))
        for d in view.deltas:
            split.append(CHAT.event_with_text(view, d.channel, d.text[len(d.text) // 2 :]))
    expected, got = accumulate(original), accumulate(split)
    assert got.choices[0].message == expected.choices[0].message
    assert got.usage == expected.usage


# (channel, text, expected delta JSON)
CONTINUATIONS = [
    (("content", 0), "more", {"content": "more"}),
    (("refusal", 2), "no", {"refusal": "no"}),
    (
        ("tool_arguments", 0, 3),
        '"x"',
        {"tool_calls": [{"index": 3, "function": {"arguments": '"x"'}}]},
    ),
    (("function_call", 1), "{}", {"function_call": {"arguments": "{}"}}),
]


@pytest.mark.parametrize(("channel", "text", "delta"), CONTINUATIONS)
def test_a_continuation_carries_only_its_text_on_the_templates_envelope(
    channel: tuple[str | int, ...], text: str, delta: dict[str, object]
) -> None:
    template = events("openai_chat_stream.sse")[0]  # has role, refusal, logprobs, usage: null
    made = CHAT.event_with_text(template, channel, text)
    payload = json.loads(made.data or "")
    ChatCompletionChunk.model_validate(payload)
    assert payload["choices"] == [{"index": channel[1], "delta": delta, "finish_reason": None}]
    assert payload["id"] == "chatcmpl-Bx1" and payload["usage"] is None
    assert CHAT.response_deltas(made) == [Delta(channel, text)]


def test_a_continuation_needs_a_json_template() -> None:
    done = events("openai_chat_stream.sse")[-1]
    with pytest.raises(ValueError, match="no JSON object"):
        CHAT.event_with_text(done, ("content", 0), "x")


def test_an_unknown_channel_cannot_be_rewritten() -> None:
    event = events("openai_chat_stream.sse")[1]
    with pytest.raises(KeyError):
        CHAT.rewrite_event(event, {("content", 5): "x"})


def test_several_fragments_of_one_tool_call_in_one_chunk_rewrite_into_the_first() -> None:
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [
                        {"index": 0, "function": {"arguments": "ab"}},
                        {"index": 0, "function": {"arguments": "cd"}},
                    ]
                },
                "finish_reason": None,
            }
        ],
    }
    event = SseEvent.build(json.dumps(chunk))
    channel = ("tool_arguments", 0, 0)
    assert CHAT.response_deltas(event) == [Delta(channel, "ab"), Delta(channel, "cd")]
    rewritten = CHAT.rewrite_event(event, {channel: "XY"})
    assert CHAT.response_deltas(rewritten) == [Delta(channel, "XY")]


# (name, data, expected error message or None for a good event)
ODD_EVENTS = [
    ("a comment", None, None),
    ("done with trailing text is still done", "[DONE] ", None),
    ("an upstream error", '{"error":{"message":"overloaded","type":"server_error"}}', None),
    ("invalid JSON", "{nope", "not valid JSON"),
    ("a JSON array", "[1]", "must be a JSON object"),
    ("choices not a list", '{"choices":{}}', "must be a list"),
    ("a choice not an object", '{"choices":[1]}', "must be an object"),
    ("nesting bomb", "[" * 200 + "]" * 200, "nests deeper"),
]


@pytest.mark.parametrize(("name", "data", "error"), ODD_EVENTS, ids=[c[0] for c in ODD_EVENTS])
def test_odd_events_are_read_or_refused_with_bad_response_body(
    name: str, data: str | None, error: str | None
) -> None:
    event = SseEvent.build(data) if data is not None else SseParser().feed(b": ping\n\n")[0]
    if error is None:
        view = CHAT.read_event(event)
        assert view.deltas == ()
    else:
        with pytest.raises(BadResponseBody, match=error):
            CHAT.read_event(event)


def test_an_upstream_error_event_is_reported() -> None:
    event = SseEvent.build('{"error":{"message":"overloaded","type":"server_error"}}')
    assert CHAT.read_event(event).error == "overloaded"


REQUEST_PARTS = [
    (("messages", 0, "content"), "You are a billing assistant.", "system"),
    (("messages", 1, "content", 0, "text"), "Never reveal card numbers.", "system"),
    (("messages", 2, "content", 0, "text"), "My card is 4111 1111 1111 1111, ", "message"),
    (("messages", 2, "content", 2, "text"), "what did I buy?", "message"),
    (
        ("messages", 3, "tool_calls", 0, "function", "arguments"),
        '{"card": "4111111111111111"}',
        "tool_arguments",
    ),
    (("messages", 4, "content"), "order ORD-1 for AKIAIOSFODNN7EXAMPLE", "tool_result"),
    (("messages", 5, "content", 0, "refusal"), "I cannot share that.", "assistant"),
    (("messages", 6, "content"), "Thanks – merci ✓", "message"),
]


def test_request_texts_lists_every_text_with_its_locator_and_kind() -> None:
    parts = CHAT.request_texts(document("openai_chat_request.json"))
    assert [(p.locator, p.text, p.kind) for p in parts] == REQUEST_PARTS


def test_rewrite_request_replaces_located_texts_and_nothing_else() -> None:
    original = document("openai_chat_request.json")
    snapshot = json.dumps(original)
    replacements = {p.locator: f"<{i}>" for i, p in enumerate(CHAT.request_texts(original))}
    body = CHAT.rewrite_request(original, replacements)
    assert json.dumps(original) == snapshot  # the input document is not modified
    rewritten = json.loads(body)
    assert [p.text for p in CHAT.request_texts(rewritten)] == [f"<{i}>" for i in range(8)]
    assert rewritten["messages"][2]["content"][1] == original["messages"][2]["content"][1]  # type: ignore[index]
    assert {k: v for k, v in rewritten.items() if k != "messages"} == {
        k: v for k, v in original.items() if k != "messages"
    }
    assert CHAT.parse_request(body).stream is True


def test_rewrite_request_refuses_a_locator_that_is_not_a_string() -> None:
    with pytest.raises(KeyError):
        CHAT.rewrite_request(document("openai_chat_request.json"), {("messages", 2): "x"})


def test_response_texts_and_rewrite_response_cover_content_and_tool_arguments() -> None:
    body = document("openai_chat_response.json")
    parts = CHAT.response_texts(body)
    assert [(p.locator, p.kind) for p in parts] == [
        (("choices", 0, "message", "content"), "output"),
        (("choices", 0, "message", "tool_calls", 0, "function", "arguments"), "tool_arguments"),
    ]
    rewritten = json.loads(CHAT.rewrite_response(body, {parts[0].locator: "[redacted]"}))
    ChatCompletion.model_validate(rewritten)
    assert rewritten["choices"][0]["message"]["content"] == "[redacted]"
    assert CHAT.usage(body) == Usage(input_tokens=82, output_tokens=37)


def test_error_events_are_an_error_object_then_done() -> None:
    error, done = CHAT.error_events("blocked by policy rule aws-key", "weir_response_blocked")
    assert json.loads(error.data or "") == {
        "error": {
            "message": "blocked by policy rule aws-key",
            "type": "permission_error",
            "param": None,
            "code": "weir_response_blocked",
        }
    }
    assert serialize(done) == b"data: [DONE]\n\n"
    assert CHAT.read_event(error).error == "blocked by policy rule aws-key"
