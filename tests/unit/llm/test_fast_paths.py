"""Fast paths for token events (in-place rewrite, plain content chunks) equal the general ones."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extproc.llm import OpenAIChatCompletions
from extproc.llm.base import BadResponseBody, StreamEvent, replace_strings, rewrite_stream_event
from extproc.sse import SseParser

CHAT = OpenAIChatCompletions()
texts = st.text(max_size=30)


def view_of(data: str):
    parser = SseParser()
    [event] = parser.feed(f"data: {data}\n\n".encode())
    return CHAT.read_event(event)


def chunk(content: str, model: str = "gpt-4o", ensure_ascii: bool = False) -> str:
    return json.dumps(
        {"id": "c", "object": "chat.completion.chunk", "model": model,
         "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}]},
        ensure_ascii=ensure_ascii,
    )


@given(old=texts.filter(bool), new=texts, model=texts, ensure_ascii=st.booleans())
def test_the_rewritten_event_is_the_payload_with_one_string_changed(
    old: str, new: str, model: str, ensure_ascii: bool
) -> None:
    view = view_of(chunk(old, model, ensure_ascii))
    [delta] = view.deltas
    rewritten = rewrite_stream_event(view, {delta.channel: new})
    path = view.paths[delta.channel][0]
    assert json.loads(rewritten.data) == replace_strings(view.payload, {path: new})


def test_the_upstreams_own_formatting_is_kept() -> None:
    data = '{"id":"c",  "choices":[{"index":0,"delta":{"content":"secret"},"finish_reason":null}]}'
    view = view_of(data)
    rewritten = rewrite_stream_event(view, {view.deltas[0].channel: "[REDACTED]"})
    assert rewritten.data == data.replace('"secret"', '"[REDACTED]"')


def test_a_literal_that_occurs_twice_is_not_spliced() -> None:
    # The model name equals the content: swapping the first occurrence would be wrong.
    view = view_of(chunk("gpt-4o"))
    rewritten = rewrite_stream_event(view, {view.deltas[0].channel: "x"})
    payload = json.loads(rewritten.data)
    assert payload["model"] == "gpt-4o" and payload["choices"][0]["delta"]["content"] == "x"


def test_upstream_escapes_the_splice_cannot_find_fall_back_to_a_dump() -> None:
    data = '{"choices":[{"index":0,"delta":{"content":"caf\\u00e9 \\/ x"},"finish_reason":null}]}'
    view = view_of(data)
    assert view.deltas[0].text == "café / x"
    rewritten = rewrite_stream_event(view, {view.deltas[0].channel: "y"})
    assert json.loads(rewritten.data)["choices"][0]["delta"]["content"] == "y"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=6,
)
chunks = st.fixed_dictionaries(
    {"id": st.just("c"), "choices": st.lists(st.fixed_dictionaries(
        {"delta": st.dictionaries(st.sampled_from(["content", "role", "refusal"]),
                                  st.none() | st.text(max_size=6), max_size=2)},
        optional={"index": st.integers(0, 3), "finish_reason": st.none() | st.just("stop"),
                  "logprobs": json_values}), max_size=2)},
    optional={"usage": st.none() | st.fixed_dictionaries({"prompt_tokens": st.integers(0, 9)}),
              "error": json_values, "model": st.text(max_size=5)},
)


@given(payload=chunks)
def test_the_content_chunk_fast_path_reads_what_the_general_walk_reads(payload: dict) -> None:
    import extproc.llm.openai_chat as chat

    event = SseParser().feed(f"data: {json.dumps(payload)}\n\n".encode())[0]

    def outcome() -> object:
        try:
            return CHAT.read_event(event)
        except BadResponseBody as exc:  # a malformed index fails closed on both paths
            return str(exc)

    fast = outcome()
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(chat, "_read_content_chunk", lambda event, payload: None)
        general = outcome()
    if isinstance(fast, StreamEvent):
        # Only the fast path vouches that the rest of the chunk is structural.
        assert fast.mergeable or not fast.plain
        fast = dataclasses.replace(fast, plain=False)
    assert fast == general


@pytest.mark.parametrize(("old", "new"), [("\\ud800 key", "x"), ("x", "\ud800")])
def test_lone_surrogates_fall_back_to_the_dump(old: str, new: str) -> None:
    data = '{"choices":[{"index":0,"delta":{"content":"' + old + '"},"finish_reason":null}]}'
    view = view_of(data)
    rewritten = rewrite_stream_event(view, {view.deltas[0].channel: new})
    assert json.loads(rewritten.data)["choices"][0]["delta"]["content"] == new
