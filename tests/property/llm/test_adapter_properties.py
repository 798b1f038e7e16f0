"""Properties of the provider adapters: any text survives a rewrite, valid for the SDK types."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from anthropic.types import RawMessageStreamEvent
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletionChunk
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from extproc.llm import AnthropicMessages, OpenAIChatCompletions, OpenAIResponses, Provider
from extproc.sse import SseEvent, SseParser, serialize

FIXTURES = Path(__file__).parents[2] / "unit" / "llm" / "fixtures"


def transcript(name: str) -> list[SseEvent]:
    parser = SseParser()
    return parser.feed((FIXTURES / name).read_bytes()) + parser.finish()


def chat_valid(payload: object) -> None:
    ChatCompletionChunk.model_validate(payload)


_RESPONSES_EVENT: TypeAdapter[ResponseStreamEvent] = TypeAdapter(ResponseStreamEvent)
_ANTHROPIC_EVENT: TypeAdapter[RawMessageStreamEvent] = TypeAdapter(RawMessageStreamEvent)

# (adapter, transcript, validator of one event's JSON)
CASES: list[tuple[Provider, str, Callable[[object], object]]] = [
    (OpenAIChatCompletions(), "openai_chat_stream.sse", chat_valid),
    (OpenAIChatCompletions(), "openai_chat_tools_stream.sse", chat_valid),
    (OpenAIResponses(), "openai_responses_stream.sse", _RESPONSES_EVENT.validate_python),
    (AnthropicMessages(), "anthropic_stream.sse", _ANTHROPIC_EVENT.validate_python),
]
TRANSCRIPTS = {name: transcript(name) for _, name, _ in CASES}

# Any text a model may send, including quotes, backslashes, control characters, line
# breaks, astral characters and lone surrogates (legal in JSON as escapes).
any_text = st.text(max_size=40)


@settings(deadline=None, max_examples=60)
@given(st.sampled_from(range(len(CASES))), st.data())
def test_any_replacement_text_round_trips_through_a_valid_event(
    case: int, data: st.DataObject
) -> None:
    adapter, name, validate = CASES[case]
    texted = [e for e in TRANSCRIPTS[name] if adapter.read_event(e).texts]
    event = data.draw(st.sampled_from(texted))
    view = adapter.read_event(event)
    new = {d.channel: data.draw(any_text) for d in view.texts}
    rewritten = adapter.rewrite_event(view, new)
    # The bytes parse back as one SSE event with the same fields.
    [again] = SseParser().feed(serialize(rewritten))
    assert again == rewritten
    assert again.event == event.event
    validate(json.loads(again.data or ""))
    back = adapter.read_event(again)
    assert {d.channel: d.text for d in back.deltas} == {
        d.channel: new[d.channel] for d in view.deltas if new[d.channel]
    }
    assert {d.channel: d.text for d in back.snapshots} == {
        d.channel: new[d.channel] for d in view.snapshots
    }


@settings(deadline=None, max_examples=60)
@given(st.sampled_from(range(len(CASES))), st.data())
def test_any_split_of_a_delta_reads_back_as_the_same_text(case: int, data: st.DataObject) -> None:
    """Release a prefix in the rewritten event and the rest in continuations."""
    adapter, name, validate = CASES[case]
    with_deltas = [e for e in TRANSCRIPTS[name] if adapter.read_event(e).deltas]
    view = adapter.read_event(data.draw(st.sampled_from(with_deltas)))
    delta = view.deltas[0]
    text = data.draw(any_text)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=3)))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    events = [adapter.rewrite_event(view, {delta.channel: pieces[0]})]
    events += [adapter.event_with_text(view, delta.channel, piece) for piece in pieces[1:]]
    stream = b"".join(serialize(e) for e in events)
    parser = SseParser()
    parsed = parser.feed(stream) + parser.finish()
    assert parsed == events
    for event in parsed:
        validate(json.loads(event.data or ""))
    got = "".join(
        d.text for e in parsed for d in adapter.response_deltas(e) if d.channel == delta.channel
    )
    assert got == text


REQUESTS: list[tuple[Provider, str]] = [
    (OpenAIChatCompletions(), "openai_chat_request.json"),
    (OpenAIResponses(), "openai_responses_request.json"),
    (AnthropicMessages(), "anthropic_request.json"),
]


@settings(deadline=None, max_examples=40)
@given(st.sampled_from(range(len(REQUESTS))), st.data())
def test_any_request_redaction_gives_valid_json_with_exactly_those_texts(
    case: int, data: st.DataObject
) -> None:
    adapter, name = REQUESTS[case]
    document = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    parts = adapter.request_texts(document)
    chosen = data.draw(st.lists(st.sampled_from(parts), unique=True))
    replacements = {p.locator: data.draw(any_text) for p in chosen}
    body = adapter.rewrite_request(document, replacements)
    request = adapter.parse_request(body)
    assert request.model == document["model"]
    after = adapter.request_texts(json.loads(body))
    assert [p.locator for p in after] == [p.locator for p in parts]
    assert [p.text for p in after] == [replacements.get(p.locator, p.text) for p in parts]
