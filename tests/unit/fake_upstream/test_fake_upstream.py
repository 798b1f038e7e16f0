"""The fake LLM upstream, driven by the official openai and anthropic SDKs."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
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
    reply_text,
    start_fake_upstream,
)

ROOT = Path(__file__).resolve().parents[3]


# --- reply text and chunking (pure functions) --------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"messages": user("echo: hi there")}, "hi there"),
        ({"messages": user("echo:hi")}, "hi"),
        ({"messages": user("echo:  two spaces")}, " two spaces"),
        ({"messages": user("echo:")}, ""),
        ({"messages": user("please echo: nothing")}, DEFAULT_REPLY),
        ({"messages": [*user("echo: old"), {"role": "assistant", "content": "x"}]}, "old"),
        ({"messages": [*user("echo: first"), *user("second")]}, DEFAULT_REPLY),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "echo: parts"}]}]},
            "parts",
        ),
        ({}, DEFAULT_REPLY),
    ],
)
def test_the_reply_echoes_the_last_user_message_after_echo_colon(
    body: dict[str, Any], expected: str
) -> None:
    assert reply_text(body) == expected


@pytest.mark.parametrize(
    ("text", "shape", "expected"),
    [
        ("hello big world", ReplyShape(), ["hello", " big", " world"]),
        ("  lead", ReplyShape(), ["  lead"]),
        ("", ReplyShape(), []),
        ("abcdefg", ReplyShape(token_bytes=3), ["abc", "def", "g"]),
        ("héllo", ReplyShape(token_bytes=2), ["hé", "ll", "o"]),
        ("ab", ReplyShape(events=5), ["ab", " ", "ab", " ", "ab"]),
        ("abc", ReplyShape(events=3, event_bytes=2), ["ab", "c ", "ab"]),
        ("abc", ReplyShape(event_bytes=2), ["ab", "c"]),
        ("", ReplyShape(events=2), ["Hello", " from"]),
        ("abc", ReplyShape(events=0), []),
    ],
)
def test_content_pieces_follow_the_requested_shape(
    text: str, shape: ReplyShape, expected: list[str]
) -> None:
    assert content_pieces(text, shape) == expected


# --- OpenAI Chat Completions through the official SDK ------------------------------


def test_openai_non_stream_is_a_chat_completion_with_usage(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(model="gpt-4o", messages=user("echo: hi there"))
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o"
    assert completion.choices[0].message.content == "hi there"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 2
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


@pytest.mark.parametrize(
    ("prompt", "headers", "expected_pieces"),
    [
        ("echo: one two three", {}, ["one", " two", " three"]),
        ("echo: abcdefgh", {"x-fake-token-bytes": "3"}, ["abc", "def", "gh"]),
        ("hi", {}, content_pieces(DEFAULT_REPLY, ReplyShape())),
        ("echo: xy", {"x-fake-events": "4", "x-fake-event-bytes": "2"}, ["xy", " x", "y ", "xy"]),
    ],
)
def test_openai_stream_sends_role_then_content_pieces_then_stop(
    oai: openai.OpenAI, prompt: str, headers: dict[str, str], expected_pieces: list[str]
) -> None:
    stream = oai.chat.completions.create(
        model="gpt-4o-mini", messages=user(prompt), stream=True, extra_headers=headers
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert all(c.model == "gpt-4o-mini" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert pieces == expected_pieces
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])


def test_openai_stream_with_include_usage_ends_with_a_usage_chunk(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="gpt-4o",
        messages=user("echo: a b c"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3
    assert all(c.usage is None for c in chunks[:-1])


def test_openai_raw_stream_ends_with_done(upstream: ThreadedUpstream) -> None:
    response = http(
        "POST",
        f"{upstream.url}/v1/chat/completions",
        json_body={"model": "m", "messages": user("echo: x"), "stream": True},
    )
    assert response.content_type.startswith("text/event-stream")
    assert response.text.endswith("data: [DONE]\n\n")


# --- Anthropic Messages through the official SDK -----------------------------------


def test_anthropic_non_stream_is_a_message_with_usage(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model="claude-fake-model", max_tokens=64, messages=user("echo: hello claude")
    )
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == "claude-fake-model"
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "hello claude"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 2


@pytest.mark.parametrize(
    ("prompt", "headers", "expected_pieces"),
    [
        ("echo: stream me please", {}, ["stream", " me", " please"]),
        ("echo: abcde", {"x-fake-token-bytes": "2"}, ["ab", "cd", "e"]),
        ("echo: z", {"x-fake-events": "3"}, ["z", " ", "z"]),
    ],
)
def test_anthropic_stream_sends_the_real_event_sequence(
    claude: anthropic.Anthropic, prompt: str, headers: dict[str, str], expected_pieces: list[str]
) -> None:
    with claude.messages.stream(
        model="claude-haiku", max_tokens=64, messages=user(prompt), extra_headers=headers
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    types = [e.type for e in events if e.type != "text"]
    n = len(expected_pieces)
    assert types == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * n,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert [e.text for e in events if e.type == "text"] == expected_pieces
    assert final.content[0].text == "".join(expected_pieces)  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == n


def test_anthropic_raw_stream_names_every_event_and_pings(upstream: ThreadedUpstream) -> None:
    response = http(
        "POST",
        f"{upstream.url}/v1/messages",
        json_body={"model": "m", "max_tokens": 5, "messages": user("echo: a"), "stream": True},
    )
    names = [
        line[len("event: ") :] for line in response.text.split("\n") if line.startswith("event:")
    ]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


# --- errors ----------------------------------------------------------------------------


def test_invalid_json_is_a_400_in_openai_format(upstream: ThreadedUpstream) -> None:
    response = http("POST", f"{upstream.url}/v1/chat/completions", content=b"{not json")
    assert response.status == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_a_bad_fake_header_is_a_400_in_anthropic_format(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError):
        claude.messages.create(
            model="m",
            max_tokens=5,
            messages=user("hi"),
            extra_headers={"x-fake-token-bytes": "zero"},
        )


@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/models"), ("POST", "/nope")])
def test_unknown_paths_are_a_404_json(upstream: ThreadedUpstream, method: str, path: str) -> None:
    response = http(method, f"{upstream.url}{path}")
    assert response.status == 404
    assert response.json()["error"]["type"] == "not_found"


# --- recording --------------------------------------------------------------------------


def test_every_request_is_recorded_listed_logged_and_clearable(
    upstream: ThreadedUpstream, oai: openai.OpenAI
) -> None:
    oai.chat.completions.create(
        model="gpt-4o", messages=user("echo: log me"), extra_headers={"x-trace": "t1"}
    )
    http("GET", f"{upstream.url}/elsewhere?q=1")

    recorded = upstream.server.requests
    assert [(r.method, r.path) for r in recorded] == [
        ("POST", "/v1/chat/completions"),
        ("GET", "/elsewhere"),
    ]
    assert recorded[0].headers["x-trace"] == "t1"
    assert json.loads(recorded[0].body)["messages"] == user("echo: log me")
    assert recorded[1].query == "q=1"

    listed = http("GET", f"{upstream.url}/__requests").json()
    assert [r["path"] for r in listed] == ["/v1/chat/completions", "/elsewhere"]

    log_path = upstream.server.log_path
    assert log_path is not None
    logged = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert logged[-2:] == listed

    assert http("DELETE", f"{upstream.url}/__requests").status == 200
    assert http("GET", f"{upstream.url}/__requests").json() == []


def test_a_large_body_is_recorded_truncated_to_64_kib(upstream: ThreadedUpstream) -> None:
    big = "echo: " + "a" * 100_000
    http(
        "POST",
        f"{upstream.url}/v1/chat/completions",
        json_body={"model": "m", "messages": user(big)},
    )
    (recorded,) = upstream.server.requests
    assert len(recorded.body) == 64 * 1024
    assert recorded.body_truncated
    whole = json.dumps({"model": "m", "messages": user(big)}).encode()
    assert recorded.body_bytes == len(whole)
    assert recorded.body_sha256 == hashlib.sha256(whole).hexdigest()


# --- the async entry point and the command line ----------------------------------------


async def test_start_fake_upstream_picks_a_free_port_and_closes_cleanly() -> None:
    first = await start_fake_upstream("127.0.0.1", 0)
    second = await start_fake_upstream("127.0.0.1", 0)
    try:
        assert first.port > 0 and second.port > 0 and first.port != second.port
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"http://127.0.0.1:{first.port}/v1/messages",
                json={"model": "m", "max_tokens": 5, "messages": user("echo: ok")},
            ) as response,
        ):
            body = await response.json()
        assert body["content"] == [{"type": "text", "text": "ok"}]
    finally:
        await first.close()
        await second.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_command_line_prints_its_address_and_exits_0_on_signal(
    tmp_path: Path, sig: signal.Signals
) -> None:
    log = tmp_path / "requests.jsonl"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "loadtest.fake_upstream"),
            *("--host", "127.0.0.1", "--port", "0", "--log", str(log)),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on 127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        reply = http(
            "POST",
            f"http://127.0.0.1:{port}/v1/chat/completions",
            json_body={"model": "m", "messages": user("echo: cli")},
        )
        assert reply.json()["choices"][0]["message"]["content"] == "cli"
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert json.loads(log.read_text())["path"] == "/v1/chat/completions"
