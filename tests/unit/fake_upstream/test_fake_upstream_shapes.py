"""The fake upstream's streaming shapes: Responses API, tool calls, random splits,
raw SSE, gzip and usage, driven by the official openai and anthropic SDKs."""

from __future__ import annotations

import base64
import gzip
import json
import time
import zlib
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
from fake_upstream_harness import ThreadedUpstream, http, user

from loadtest.fake_upstream import (
    DEFAULT_REPLY,
    ReplyShape,
    content_pieces,
    prompt_tokens,
    reply_text,
)

ROUTES = ["/v1/chat/completions", "/v1/responses", "/v1/messages"]


def sse_names(text: str) -> list[str]:
    return [line[len("event: ") :] for line in text.split("\n") if line.startswith("event: ")]


def sse_data(text: str) -> list[dict[str, Any]]:
    return [
        json.loads(line[len("data: ") :]) for line in text.split("\n") if line.startswith("data: {")
    ]


# --- random splits (pure) -------------------------------------------------------------

UNICODE_TEXT = "héllo wörld, 日本語 and 👍🏽 emoji"
SEED_1_PIECES = ["abc", "de", "fghij", "kl", "mnop"]


@pytest.mark.parametrize("text", ["abcdefghijklmnopqrstuvwxyz", UNICODE_TEXT, "x", ""])
@pytest.mark.parametrize(("seed", "max_piece"), [(0, 8), (1, 1), (-7, 3), (123456789, 20)])
def test_a_seeded_split_rejoins_to_the_text_in_pieces_of_1_to_max_piece_characters(
    text: str, seed: int, max_piece: int
) -> None:
    shape = ReplyShape(split_seed=seed, max_piece=max_piece)
    pieces = content_pieces(text, shape)
    assert "".join(pieces) == text
    assert all(1 <= len(piece) <= max_piece for piece in pieces)
    assert content_pieces(text, shape) == pieces


def test_a_seeded_split_is_pinned_to_random_randint_so_it_is_stable_across_runs() -> None:
    # random.Random(1).randint(1, 8) draws 3, 2, 5, 2, 8 (the text runs out)
    assert content_pieces("abcdefghijklmnop", ReplyShape(split_seed=1)) == SEED_1_PIECES
    assert content_pieces("abcdefghijklmnop", ReplyShape(split_seed=2)) != content_pieces(
        "abcdefghijklmnop", ReplyShape(split_seed=1)
    )


def test_a_seeded_split_with_x_fake_events_gives_exactly_that_many_pieces() -> None:
    pieces = content_pieces("ab", ReplyShape(events=50, split_seed=9, max_piece=4))
    assert len(pieces) == 50
    assert "".join(pieces).startswith("ab ab ab ")


# --- reply text and input tokens for the Responses body (pure) ----------------------------


@pytest.mark.parametrize(
    ("body", "reply", "tokens"),
    [
        ({"input": "echo: a string input"}, "a string input", 4),
        ({"input": "hi", "instructions": "be very brief"}, DEFAULT_REPLY, 4),
        ({"input": [{"role": "user", "content": "echo: a list"}]}, "a list", 3),
        (
            {"input": [{"type": "message", "role": "user", "content": "echo: typed item"}]},
            "typed item",
            3,
        ),
        (
            {
                "input": [
                    {
                        "role": "user",
                        "content": [{"type": "input_text", "text": "echo: parts"}],
                    }
                ]
            },
            "parts",
            2,
        ),
        (
            {
                "input": [
                    {"role": "user", "content": "echo: old one"},
                    {"role": "assistant", "content": "two words"},
                    {"type": "function_call_output", "call_id": "c", "output": "ignored x y"},
                ]
            },
            "old one",
            5,
        ),
        ({"input": [{"role": "user", "content": "echo: first"}, *user("second")]}, None, 3),
        ({}, DEFAULT_REPLY, 1),
    ],
)
def test_a_responses_body_echoes_its_last_user_text_and_counts_its_words_as_input(
    body: dict[str, Any], reply: str | None, tokens: int
) -> None:
    assert reply_text(body) == (reply or DEFAULT_REPLY)
    assert prompt_tokens(body) == tokens


def test_anthropic_system_counts_toward_input_tokens() -> None:
    body = {"system": "you are terse", "messages": user("echo: x")}
    assert prompt_tokens(body) == 5


# --- OpenAI Responses API through the official SDK ------------------------------------


def test_a_non_streamed_response_has_the_text_and_the_usage(oai: openai.OpenAI) -> None:
    response = oai.responses.create(
        model="gpt-5", input="echo: hello responses api", instructions="be nice"
    )
    assert response.object == "response"
    assert response.status == "completed"
    assert response.model == "gpt-5"
    assert response.instructions == "be nice"
    assert response.output_text == "hello responses api"
    assert response.output[0].type == "message"
    assert response.output[0].content[0].text == "hello responses api"  # type: ignore[union-attr]
    assert response.usage is not None
    # input: "echo: hello responses api" (4 words) + "be nice" (2); output: 3 pieces.
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (6, 3, 9)


@pytest.mark.parametrize(
    ("prompt", "headers", "pieces"),
    [
        ("echo: one two three", {}, ["one", " two", " three"]),
        ("echo: abcdefg", {"x-fake-token-bytes": "3"}, ["abc", "def", "g"]),
        ("echo: abcdefghijklmnop", {"x-fake-split-seed": "1"}, SEED_1_PIECES),
        ("echo:", {}, []),
    ],
)
def test_a_streamed_response_sends_the_real_event_sequence(
    oai: openai.OpenAI, prompt: str, headers: dict[str, str], pieces: list[str]
) -> None:
    events = list(
        oai.responses.create(model="gpt-5", input=prompt, stream=True, extra_headers=headers)
    )
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * len(pieces),
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert [e.delta for e in events if e.type == "response.output_text.delta"] == pieces
    text = "".join(pieces)
    done = next(e for e in events if e.type == "response.output_text.done")
    assert done.text == text
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.output_text == text
    assert completed.response.usage is not None
    assert completed.response.usage.output_tokens == len(pieces)
    assert len({e.response.id for e in events if hasattr(e, "response")}) == 1


def test_the_responses_stream_helper_accumulates_the_final_response(oai: openai.OpenAI) -> None:
    with oai.responses.stream(
        model="gpt-5",
        input=[{"role": "user", "content": "echo: héllo 👍🏽 wörld"}],
        extra_headers={"x-fake-split-seed": "42", "x-fake-max-piece": "2"},
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.output_text == "héllo 👍🏽 wörld"
    assert deltas == content_pieces("héllo 👍🏽 wörld", ReplyShape(split_seed=42, max_piece=2))
    assert final.usage is not None
    assert final.usage.output_tokens == len(deltas)


def test_every_responses_stream_event_has_an_event_line_naming_its_type(
    upstream: ThreadedUpstream,
) -> None:
    reply = http(
        "POST",
        f"{upstream.url}/v1/responses",
        json_body={"model": "m", "input": "echo: a b", "stream": True},
    )
    assert reply.content_type.startswith("text/event-stream")
    assert sse_names(reply.text) == [d["type"] for d in sse_data(reply.text)]
    assert len(sse_names(reply.text)) == 10
    assert not reply.text.rstrip().endswith("[DONE]")


def test_a_bad_fake_header_on_responses_is_a_400_in_openai_format(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="x-fake-max-piece"):
        oai.responses.create(model="m", input="hi", extra_headers={"x-fake-max-piece": "0"})


# --- tool calls --------------------------------------------------------------------------


def test_a_streamed_chat_tool_call_names_the_call_first_then_streams_its_arguments(
    oai: openai.OpenAI,
) -> None:
    chunks = list(
        oai.chat.completions.create(
            model="gpt-4o",
            messages=user("echo: not json, on purpose"),
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"x-fake-tool-call": "lookup"},
        )
    )
    first = chunks[0].choices[0].delta
    assert first.role == "assistant"
    assert first.tool_calls is not None
    call = first.tool_calls[0]
    assert (call.index, call.type) == (0, "function")
    assert call.id is not None and call.id.startswith("call_")
    assert call.function is not None
    assert (call.function.name, call.function.arguments) == ("lookup", "")
    arguments = [
        c.choices[0].delta.tool_calls[0].function.arguments  # type: ignore[index,union-attr]
        for c in chunks[1:-2]
    ]
    assert arguments == ["not", " json,", " on", " purpose"]
    assert all(c.choices[0].delta.content is None for c in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4


def test_the_chat_stream_helper_accumulates_the_tool_call(oai: openai.OpenAI) -> None:
    with oai.chat.completions.stream(
        model="gpt-4o",
        messages=user('echo: {"q": "weir"}'),
        extra_headers={"x-fake-tool-call": "search", "x-fake-split-seed": "5"},
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    (call,) = final.choices[0].message.tool_calls or []
    assert (call.function.name, call.function.arguments) == ("search", '{"q": "weir"}')
    assert final.choices[0].finish_reason == "tool_calls"


def test_a_non_streamed_chat_tool_call_has_arguments_and_no_content(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(
        model="gpt-4o", messages=user("echo: a b"), extra_headers={"x-fake-tool-call": "f"}
    )
    message = completion.choices[0].message
    assert message.content is None
    (call,) = message.tool_calls or []
    assert call.type == "function"
    assert (call.function.name, call.function.arguments) == ("f", "a b")  # type: ignore[union-attr]
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 2


def test_a_streamed_responses_tool_call_is_a_function_call_item(oai: openai.OpenAI) -> None:
    with oai.responses.stream(
        model="gpt-5",
        input="echo: not json at all",
        extra_headers={"x-fake-tool-call": "lookup"},
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        *["response.function_call_arguments.delta"] * 4,
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    added = events[2]
    assert added.type == "response.output_item.added"
    assert added.item.type == "function_call"
    assert (added.item.name, added.item.arguments) == ("lookup", "")
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert deltas == ["not", " json", " at", " all"]
    done = events[-3]
    assert done.type == "response.function_call_arguments.done"
    assert done.arguments == "not json at all"
    (item,) = final.output
    assert item.type == "function_call"
    assert (item.name, item.arguments, item.call_id) == (
        "lookup",
        "not json at all",
        added.item.call_id,
    )
    assert final.output_text == ""
    assert final.usage is not None
    assert final.usage.output_tokens == 4


def test_a_non_streamed_responses_tool_call_is_a_function_call_item(oai: openai.OpenAI) -> None:
    response = oai.responses.create(
        model="gpt-5", input="echo: x y", extra_headers={"x-fake-tool-call": "f"}
    )
    (item,) = response.output
    assert item.type == "function_call"
    assert (item.name, item.arguments, item.status) == ("f", "x y", "completed")
    assert response.usage is not None
    assert response.usage.output_tokens == 2


def test_a_streamed_anthropic_tool_call_is_a_tool_use_block_of_partial_json(
    claude: anthropic.Anthropic,
) -> None:
    arguments = '{"note": "call me at 555-0100"}'
    with claude.messages.stream(
        model="claude-haiku",
        max_tokens=64,
        messages=user(f"echo: {arguments}"),
        extra_headers={"x-fake-tool-call": "save_note", "x-fake-split-seed": "3"},
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    start = next(e for e in events if e.type == "content_block_start")
    assert start.content_block.type == "tool_use"
    assert start.content_block.name == "save_note"
    partial = [e.partial_json for e in events if e.type == "input_json"]
    assert partial == content_pieces(arguments, ReplyShape(split_seed=3))
    (block,) = final.content
    assert block.type == "tool_use"
    assert block.input == {"note": "call me at 555-0100"}
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens == len(partial)


def test_anthropic_sdk_stream_helper_rejects_non_json_partial_json_but_the_raw_stream_passes_it(
    claude: anthropic.Anthropic,
) -> None:
    kwargs: Any = {
        "model": "c",
        "max_tokens": 5,
        "messages": user("echo: not json"),
        "extra_headers": {"x-fake-tool-call": "f"},
    }
    raw = list(claude.messages.create(stream=True, **kwargs))
    deltas = [e.delta for e in raw if e.type == "content_block_delta"]
    assert [d.partial_json for d in deltas] == ["not", " json"]  # type: ignore[union-attr]
    # The helper re-parses the accumulated JSON after every delta (jiter, partial mode).
    with (
        pytest.raises(ValueError, match="Unable to parse tool parameter JSON"),
        claude.messages.stream(**kwargs) as stream,
    ):
        stream.get_final_message()


@pytest.mark.parametrize(
    ("prompt", "expected_input"),
    [
        ('echo: {"a": [1, 2]}', {"a": [1, 2]}),
        ("echo: plain words", {"text": "plain words"}),
        ("echo: [1, 2]", {"text": "[1, 2]"}),
    ],
)
def test_a_non_streamed_anthropic_tool_use_input_is_the_json_object_or_wraps_the_text(
    claude: anthropic.Anthropic, prompt: str, expected_input: dict[str, Any]
) -> None:
    message = claude.messages.create(
        model="c", max_tokens=5, messages=user(prompt), extra_headers={"x-fake-tool-call": "f"}
    )
    (block,) = message.content
    assert block.type == "tool_use"
    assert (block.name, block.input) == ("f", expected_input)
    assert message.stop_reason == "tool_use"


# --- usage: the same predictable numbers in every API ---------------------------------

# 9 words in: 6 of the prompt ("echo:" is a word) + 3 of the system message/instructions.
PROMPT = "echo: the quick brown fox jumps"
SYSTEM = "answer very briefly"


def _usage_via_sdk(
    api: str, streamed: bool, tool: bool, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> tuple[int, int]:
    headers = {"x-fake-split-seed": "11", "x-fake-max-piece": "4"}
    if tool:
        headers["x-fake-tool-call"] = "f"
    if api == "chat":
        messages: Any = [{"role": "system", "content": SYSTEM}, *user(PROMPT)]
        if streamed:
            chunks = list(
                oai.chat.completions.create(
                    model="m",
                    messages=messages,
                    stream=True,
                    stream_options={"include_usage": True},
                    extra_headers=headers,
                )
            )
            chat_usage = chunks[-1].usage
        else:
            chat_usage = oai.chat.completions.create(
                model="m", messages=messages, extra_headers=headers
            ).usage
        assert chat_usage is not None
        assert chat_usage.total_tokens == chat_usage.prompt_tokens + chat_usage.completion_tokens
        return chat_usage.prompt_tokens, chat_usage.completion_tokens
    if api == "responses":
        response: openai.types.responses.Response
        if streamed:
            with oai.responses.stream(
                model="m", input=PROMPT, instructions=SYSTEM, extra_headers=headers
            ) as stream:
                response = stream.get_final_response()
        else:
            response = oai.responses.create(
                model="m", input=PROMPT, instructions=SYSTEM, extra_headers=headers
            )
        usage = response.usage
        assert usage is not None
        assert usage.total_tokens == usage.input_tokens + usage.output_tokens
        return usage.input_tokens, usage.output_tokens
    if streamed:
        events = list(
            claude.messages.create(
                model="c",
                max_tokens=5,
                system=SYSTEM,
                messages=user(PROMPT),
                stream=True,
                extra_headers=headers,
            )
        )
        start = next(e for e in events if e.type == "message_start")
        delta = next(e for e in events if e.type == "message_delta")
        return start.message.usage.input_tokens, delta.usage.output_tokens
    message = claude.messages.create(
        model="c", max_tokens=5, system=SYSTEM, messages=user(PROMPT), extra_headers=headers
    )
    return message.usage.input_tokens, message.usage.output_tokens


@pytest.mark.parametrize("tool", [False, True], ids=["text", "tool"])
@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("api", ["chat", "responses", "anthropic"])
def test_usage_is_prompt_words_in_and_content_events_out_in_every_api(
    oai: openai.OpenAI, claude: anthropic.Anthropic, api: str, streamed: bool, tool: bool
) -> None:
    expected_out = len(
        content_pieces("the quick brown fox jumps", ReplyShape(split_seed=11, max_piece=4))
    )
    assert _usage_via_sdk(api, streamed, tool, oai, claude) == (9, expected_out)


# --- raw SSE ------------------------------------------------------------------------------

# 65 bytes: a cut-off JSON string, invalid UTF-8, CRLF, a comment, a line without newline.
MALFORMED = b'event: x\ndata: {"unterminated\n\ndata: \xff\xfe not utf-8\r\n: comment\ndata'


async def _http_chunks(
    url: str, headers: dict[str, str], body: bytes
) -> tuple[int, dict[str, str], list[bytes]]:
    """The response's HTTP chunks exactly as the server wrote them (aiohttp, no decoding)."""
    chunks: list[bytes] = []
    current = b""
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.post(url, data=body, headers=headers) as response,
    ):
        async for data, end_of_chunk in response.content.iter_chunks():
            current += data
            # The terminating zero-length chunk is sometimes reported as an empty one.
            if end_of_chunk and current:
                chunks.append(current)
                current = b""
        if current:
            chunks.append(current)
        return response.status, dict(response.headers), chunks


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(("token_bytes", "expected_chunks"), [(None, 1), ("5", 13), ("1", 65)])
async def test_raw_sse_sends_exactly_the_decoded_bytes_in_token_byte_pieces(
    upstream: ThreadedUpstream, route: str, token_bytes: str | None, expected_chunks: int
) -> None:
    headers = {"x-fake-raw-sse": base64.b64encode(MALFORMED).decode()}
    if token_bytes:
        headers["x-fake-token-bytes"] = token_bytes
    # The body is not even JSON: raw mode never parses it.
    status, got, chunks = await _http_chunks(f"{upstream.url}{route}", headers, b"{not json")
    assert status == 200
    assert got["Content-Type"] == "text/event-stream"
    assert b"".join(chunks) == MALFORMED
    assert len(chunks) == expected_chunks
    assert all(len(c) <= int(token_bytes or len(MALFORMED)) for c in chunks)
    (recorded,) = upstream.server.requests
    assert recorded.body == "{not json"


@pytest.mark.parametrize(("route", "error_key"), [(ROUTES[1], "error"), (ROUTES[2], "type")])
def test_raw_sse_that_is_not_base64_is_a_400(
    upstream: ThreadedUpstream, route: str, error_key: str
) -> None:
    reply = http("POST", f"{upstream.url}{route}", headers={"x-fake-raw-sse": "***"}, content=b"")
    assert reply.status == 400
    assert error_key in reply.json()
    assert "x-fake-raw-sse" in reply.text


# --- gzip ---------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
def test_gzip_compresses_a_whole_reply_and_says_so(upstream: ThreadedUpstream, route: str) -> None:
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": user("echo: zip me"),
        "input": "echo: zip me",
    }
    reply = http(
        "POST",
        f"{upstream.url}{route}",
        json_body=body,
        headers={"x-fake-content-encoding": "gzip"},
    )
    assert reply.status == 200
    assert reply.headers["content-encoding"] == "gzip"
    assert reply.body[:2] == b"\x1f\x8b"
    assert b"zip me" not in reply.body
    assert b"zip me" in gzip.decompress(reply.body)


def test_a_gzip_stream_is_flushed_per_event_so_it_decodes_before_the_end(
    upstream: ThreadedUpstream,
) -> None:
    reply = http(
        "POST",
        f"{upstream.url}/v1/messages",
        json_body={"model": "m", "max_tokens": 5, "messages": user("echo: a b c"), "stream": True},
        headers={"x-fake-content-encoding": "gzip"},
    )
    assert reply.headers["content-encoding"] == "gzip"
    assert reply.content_type == "text/event-stream"
    plain = gzip.decompress(reply.body).decode()
    assert sse_names(plain)[-1] == "message_stop"
    # Without the 8-byte gzip trailer (CRC32 + size) everything is already decodable.
    decoder = zlib.decompressobj(wbits=31)
    assert decoder.decompress(reply.body[:-8]).decode() == plain


@pytest.mark.parametrize("token_bytes", [None, "7"])
async def test_gzip_applies_to_raw_sse_too(
    upstream: ThreadedUpstream, token_bytes: str | None
) -> None:
    headers = {
        "x-fake-raw-sse": base64.b64encode(MALFORMED).decode(),
        "x-fake-content-encoding": "gzip",
    }
    if token_bytes:
        headers["x-fake-token-bytes"] = token_bytes
    _, got, chunks = await _http_chunks(f"{upstream.url}/v1/responses", headers, b"")
    assert got["Content-Encoding"] == "gzip"
    assert gzip.decompress(b"".join(chunks)) == MALFORMED


def test_the_sdks_read_gzipped_streams_transparently(
    oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    gz = {"x-fake-content-encoding": "gzip"}
    chat = oai.chat.completions.create(
        model="m", messages=user("echo: one"), stream=True, extra_headers=gz
    )
    assert "".join(c.choices[0].delta.content or "" for c in chat) == "one"
    with oai.responses.stream(model="m", input="echo: two", extra_headers=gz) as stream:
        assert stream.get_final_response().output_text == "two"
    with claude.messages.stream(
        model="c", max_tokens=5, messages=user("echo: three"), extra_headers=gz
    ) as anthropic_stream:
        assert anthropic_stream.get_final_text() == "three"


# --- header validation and pacing -------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "mentions"),
    [
        ({"x-fake-split-seed": "1", "x-fake-token-bytes": "2"}, "x-fake-split-seed"),
        ({"x-fake-split-seed": "1", "x-fake-event-bytes": "2"}, "x-fake-split-seed"),
        ({"x-fake-split-seed": "one"}, "x-fake-split-seed"),
        ({"x-fake-max-piece": "0"}, "x-fake-max-piece"),
        ({"x-fake-content-encoding": "br"}, "x-fake-content-encoding"),
        ({"x-fake-piece-delay-ms": "-1"}, "x-fake-piece-delay-ms"),
    ],
)
def test_contradictory_or_invalid_fake_headers_are_a_400_naming_the_header(
    upstream: ThreadedUpstream, headers: dict[str, str], mentions: str
) -> None:
    reply = http(
        "POST",
        f"{upstream.url}/v1/chat/completions",
        json_body={"model": "m", "messages": user("hi")},
        headers=headers,
    )
    assert reply.status == 400
    assert mentions in reply.json()["error"]["message"]


def test_a_piece_delay_paces_the_stream(upstream: ThreadedUpstream) -> None:
    started = time.monotonic()
    reply = http(
        "POST",
        f"{upstream.url}/v1/chat/completions",
        json_body={"model": "m", "messages": user("echo: a b"), "stream": True},
        headers={"x-fake-piece-delay-ms": "40"},
    )
    # role, "a", " b", finish, [DONE]: four gaps of 40 ms.
    assert time.monotonic() - started >= 0.16
    assert reply.text.endswith("data: [DONE]\n\n")


def test_the_reply_header_chooses_the_reply_whatever_the_prompt(oai: openai.OpenAI) -> None:
    text = "chosen reply with ünïcode"
    completion = oai.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "echo: something else"}],
        extra_headers={"x-fake-reply-b64": base64.b64encode(text.encode()).decode()},
    )
    assert completion.choices[0].message.content == text
