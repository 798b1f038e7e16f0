"""The in-band error events make the official SDKs raise, read from a real HTTP stream.

A tiny HTTP server on 127.0.0.1 serves a canned SSE body: the start of a real-looking
transcript, then the adapter's error_events. The SDK must yield the events before the
error and then raise its own error type; nothing after the error may reach the caller.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anthropic
import openai
import pytest
from transcripts import events

from extproc.llm import AnthropicMessages, OpenAIChatCompletions, OpenAIResponses
from extproc.sse import serialize

MESSAGE = "Weir blocked this response: rule aws-access-key"
CODE = "weir_response_blocked"


class CannedStream:
    """One HTTP server whose every POST answers 200 text/event-stream with `body`."""

    def __init__(self) -> None:
        self.body = b""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", "0")))
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("content-length", str(len(owner.body)))
                self.end_headers()
                self.wfile.write(owner.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def upstream() -> Iterator[CannedStream]:
    server = CannedStream()
    yield server
    server.close()


def test_openai_chat_stream_raises_api_error_after_the_released_text(
    upstream: CannedStream,
) -> None:
    adapter = OpenAIChatCompletions()
    transcript = events("openai_chat_stream.sse")
    released = transcript[:2]  # role chunk, "Your key is "
    upstream.body = b"".join(map(serialize, released + adapter.error_events(MESSAGE, CODE)))
    client = openai.OpenAI(base_url=f"{upstream.url}/v1", api_key="test", max_retries=0)
    received: list[str] = []
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    with pytest.raises(openai.APIError) as raised:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "Your key is "
    assert raised.value.message == MESSAGE
    assert raised.value.body == {
        "message": MESSAGE,
        "type": "permission_error",
        "param": None,
        "code": CODE,
    }
    assert raised.value.code == CODE


def test_openai_responses_stream_raises_api_error_at_the_error_event(
    upstream: CannedStream,
) -> None:
    adapter = OpenAIResponses()
    transcript = events("openai_responses_stream.sse")
    views = [adapter.read_event(e) for e in transcript[:5]]  # up to the first text delta
    upstream.body = b"".join(
        map(
            serialize,
            transcript[:5] + adapter.error_events(MESSAGE, CODE, first=views[0], last=views[-1]),
        )
    )
    client = openai.OpenAI(base_url=f"{upstream.url}/v1", api_key="test", max_retries=0)
    seen: list[str] = []
    with pytest.raises(openai.APIError) as raised:
        for event in client.responses.create(model="gpt-4.1", input="hi", stream=True):
            seen.append(event.type)
    assert seen == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert raised.value.message == MESSAGE
    assert raised.value.code == CODE


def test_openai_responses_stream_helper_raises_too(upstream: CannedStream) -> None:
    adapter = OpenAIResponses()
    transcript = events("openai_responses_stream.sse")
    first = adapter.read_event(transcript[0])
    upstream.body = b"".join(
        map(serialize, transcript[:5] + adapter.error_events(MESSAGE, CODE, first=first))
    )
    client = openai.OpenAI(base_url=f"{upstream.url}/v1", api_key="test", max_retries=0)
    with (
        pytest.raises(openai.APIError, match="rule aws-access-key"),
        client.responses.stream(model="gpt-4.1", input="hi") as stream,
    ):
        for _ in stream:
            pass


def test_anthropic_stream_raises_api_status_error_after_the_released_text(
    upstream: CannedStream,
) -> None:
    adapter = AnthropicMessages()
    transcript = events("anthropic_stream.sse")
    released = transcript[:4]  # message_start, content_block_start, ping, first text delta
    upstream.body = b"".join(map(serialize, released + adapter.error_events(MESSAGE, CODE)))
    client = anthropic.Anthropic(base_url=upstream.url, api_key="test", max_retries=0)
    received: list[str] = []
    stream = client.messages.create(
        model="claude-test",
        max_tokens=64,
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
    )
    with pytest.raises(anthropic.APIStatusError) as raised:
        for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                received.append(event.delta.text)
    assert received == ["Okay, let me check the weather"]
    assert raised.value.body == {
        "type": "error",
        "error": {"type": "permission_error", "message": MESSAGE},
    }
    assert MESSAGE in str(raised.value)


def test_anthropic_stream_helper_raises_too(upstream: CannedStream) -> None:
    adapter = AnthropicMessages()
    upstream.body = b"".join(
        map(serialize, events("anthropic_stream.sse")[:4] + adapter.error_events(MESSAGE, CODE))
    )
    client = anthropic.Anthropic(base_url=upstream.url, api_key="test", max_retries=0)
    with (
        pytest.raises(anthropic.APIStatusError, match="rule aws-access-key"),
        client.messages.stream(
            model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        ) as stream,
    ):
        for _ in stream.text_stream:
            pass
