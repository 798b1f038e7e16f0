"""No secret leaves through a field, an encoding or a shape the guard once did not read.

Official SDKs, real Envoy over mTLS, Weir, and the fake upstream answering exactly the
SSE bytes each test writes (``x-fake-raw-sse``), in pieces that split events and lines.
The sandbox policy: `checkout` redacts secrets in answers, `notebook` blocks them.
"""

from __future__ import annotations

import base64
import json

import anthropic
import openai
import pytest
from weir_admin import eventually, metric_matching

from mesh.sandbox import MeshSandbox

AWS_KEY = "AKIAQ3EGUKZW5XYT7M2P"
ESCAPED_KEY = "".join(f"\\u{ord(ch):04x}" for ch in AWS_KEY[:4]) + AWS_KEY[4:]
REDACTED = "[REDACTED:aws-access-key-id]"
PROMPT = [{"role": "user", "content": "Tell me what you know."}]


def raw_sse(events: list[bytes], piece_bytes: int = 7) -> dict[str, str]:
    body = b"".join(events)
    return {"x-fake-raw-sse": base64.b64encode(body).decode(),
            "x-fake-token-bytes": str(piece_bytes)}


def sse(payload: dict, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(payload)}\n\n".encode()


def chat(delta: dict, index: object = 0, **extra: object) -> bytes:
    return sse({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                "model": "gpt-4o", "choices": [{"index": index, "delta": delta,
                                                "finish_reason": None, **extra}]})


def chat_stream(*middle: bytes) -> list[bytes]:
    finish = sse({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                  "model": "gpt-4o", "choices": [{"index": 0, "delta": {},
                                                  "finish_reason": "stop"}]})
    return [chat({"role": "assistant", "content": ""}), *middle, finish, b"data: [DONE]\n\n"]


def anthropic_stream(*blocks: bytes) -> list[bytes]:
    def ev(payload: dict) -> bytes:
        return sse(payload, payload["type"])

    start = ev({"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 1}}})
    end = [ev({"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                                  "stop_sequence": None},
               "usage": {"output_tokens": 5}}), ev({"type": "message_stop"})]
    return [start, *blocks, *end]


def block_event(payload: dict) -> bytes:
    return sse(payload, payload["type"])


def test_openai_tool_call_arguments_with_an_escaped_key_are_redacted_as_json_loads_reads_them(
    mesh: MeshSandbox,
) -> None:
    arguments = '{"note": "deploy with ' + ESCAPED_KEY + ' today", "n": 1}'
    pieces = [arguments[i : i + 5] for i in range(0, len(arguments), 5)]
    events = chat_stream(
        chat({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                              "function": {"name": "deploy", "arguments": ""}}]}),
        *(chat({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in pieces),
    )
    client = mesh.openai_client("checkout")
    received = ""
    for chunk in client.chat.completions.create(
        model="gpt-4o", messages=PROMPT, stream=True, extra_headers=raw_sse(events)
    ):
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            received += (call.function.arguments or "") if call.function else ""
    decoded = json.loads(received)
    assert decoded == {"note": f"deploy with {REDACTED} today", "n": 1}


def test_the_anthropic_helpers_tool_input_never_holds_an_escaped_key(mesh: MeshSandbox) -> None:
    source = '{"note": "' + ESCAPED_KEY + '"}'
    pieces = [source[i : i + 4] for i in range(0, len(source), 4)]
    events = anthropic_stream(
        block_event({"type": "content_block_start", "index": 0, "content_block": {
            "type": "tool_use", "id": "toolu_1", "name": "deploy", "input": {}}}),
        *(block_event({"type": "content_block_delta", "index": 0,
                       "delta": {"type": "input_json_delta", "partial_json": p}})
          for p in pieces),
        block_event({"type": "content_block_stop", "index": 0}),
    )
    client = mesh.anthropic_client("checkout")
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=50, messages=PROMPT,
                                extra_headers=raw_sse(events)) as stream:
        message = stream.get_final_message()
    [block] = message.content
    assert block.type == "tool_use"
    assert block.input == {"note": REDACTED}


def test_logprobs_never_release_what_a_blocked_stream_held(mesh: MeshSandbox) -> None:
    pieces = ["The key is ", "AKIAQ3EG", "UKZW5XYT", "7M2P."]

    def with_logprobs(piece: str) -> bytes:
        token = {"token": piece, "logprob": -0.5, "bytes": list(piece.encode()),
                 "top_logprobs": [{"token": piece, "logprob": -0.5,
                                   "bytes": list(piece.encode())}]}
        return chat({"content": piece}, logprobs={"content": [token], "refusal": None})

    events = chat_stream(*(with_logprobs(p) for p in pieces))
    client = mesh.openai_client("notebook")
    text, tokens = "", ""
    with pytest.raises(openai.APIError) as raised:
        for chunk in client.chat.completions.create(
            model="o3", messages=PROMPT, stream=True, logprobs=True,
            extra_headers=raw_sse(events, piece_bytes=11),
        ):
            choice = chunk.choices[0] if chunk.choices else None
            if choice is None:
                continue
            text += choice.delta.content or ""
            for entry in (choice.logprobs.content or []) if choice.logprobs else []:
                tokens += entry.token + "".join(t.token for t in entry.top_logprobs)
                tokens += bytes(entry.bytes or []).decode()
    assert "aws-access-key-id" in str(raised.value)
    assert text == "The key is "
    for seen in (text, tokens):
        assert "AKIA" not in seen


def test_reasoning_text_is_scanned_like_the_answer(mesh: MeshSandbox) -> None:
    pieces = ["Thinking: the key ", "AKIAQ3EGUKZ", "W5XYT7M2P is in ", "the vault."]
    events = chat_stream(*(chat({"reasoning_content": p}) for p in pieces),
                         chat({"content": "Done."}))
    client = mesh.openai_client("checkout")
    reasoning, content = "", ""
    for chunk in client.chat.completions.create(
        model="gpt-4o", messages=PROMPT, stream=True, extra_headers=raw_sse(events)
    ):
        if chunk.choices:
            delta = chunk.choices[0].delta
            reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
            content += delta.content or ""
    assert reasoning == f"Thinking: the key {REDACTED} is in the vault."
    assert content == "Done."


def test_a_string_channel_index_ends_the_stream_with_an_error_not_unscanned_text(
    mesh: MeshSandbox,
) -> None:
    def errors() -> float:
        return metric_matching(mesh, r'weir_requests_total\{.*decision="error".*\}')

    before = errors()
    events = chat_stream(chat({"content": f"the key {AWS_KEY}"}, index="0"))
    client = mesh.openai_client("checkout")
    received = ""
    with pytest.raises(openai.APIError) as raised:
        for chunk in client.chat.completions.create(
            model="gpt-4o", messages=PROMPT, stream=True, extra_headers=raw_sse(events)
        ):
            if chunk.choices:
                received += chunk.choices[0].delta.content or ""
    assert "index" in str(raised.value)
    assert AWS_KEY not in received and "AKIA" not in received
    assert eventually(lambda: errors() == before + 1)


def test_text_split_between_an_opening_event_and_its_delta_is_caught(mesh: MeshSandbox) -> None:
    events = anthropic_stream(
        block_event({"type": "content_block_start", "index": 0,
                     "content_block": {"type": "text", "text": "key AKIAQ3EGU"}}),
        block_event({"type": "content_block_delta", "index": 0,
                     "delta": {"type": "text_delta", "text": "KZW5XYT7M2P here"}}),
        block_event({"type": "content_block_stop", "index": 0}),
    )
    client = mesh.anthropic_client("checkout")
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=50, messages=PROMPT,
                                extra_headers=raw_sse(events)) as stream:
        message = stream.get_final_message()
    assert message.content[0].type == "text"
    assert message.content[0].text == f"key {REDACTED} here"


def test_an_upstream_error_reply_is_scanned_too(mesh: MeshSandbox) -> None:
    # Not a 2xx: the fake upstream refuses a bad header in the route's format, quoting it.
    client = mesh.anthropic_client("checkout")
    with pytest.raises(anthropic.BadRequestError) as raised:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=PROMPT,
                               extra_headers={"x-fake-token-bytes": f"k {AWS_KEY}"})
    assert AWS_KEY not in str(raised.value.body)
