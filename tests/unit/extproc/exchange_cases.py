"""Deterministic answers of the three providers, and a driver for whole exchanges.

Shared by the exchange table tests: the same answer (text or a tool call, streamed or
whole) in OpenAI chat, OpenAI responses and Anthropic messages, byte for byte the same
in every run, and `Run`, which drives an `Exchange` through its request and hands back
the steps (`Exchange.handle`) of each response event.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from extproc.events import BodyEvent, Direction, Event, HeadersEvent, TrailersEvent
from extproc.exchange_record import Publish
from extproc.stream import Exchange
from mesh.policy import parse_policy

REQ, RESP = Direction.REQUEST, Direction.RESPONSE
AGENT = "spiffe://cluster.local/ns/agents/sa/helper"
# A well-formed AWS access key id: the secrets scanner's rule matches it.
SECRET = "AKIAQ3EGUKZW5XYT7M2P"

RULES = {
    "no-rules": "",
    "redact": "    response: [{scanner: secrets, action: redact}]\n",
    "block": "    response: [{scanner: secrets, action: block}]\n",
    "audit-only": "    response: [{scanner: secrets, action: audit}]\n",
    "tools-only": '    tools: ["search_docs", "get_*"]\n',
    "tools-and-redact": '    tools: ["search_docs", "get_*"]\n'
    "    response: [{scanner: secrets, action: redact}]\n",
}


def policy_text(rules: str, mode: str = "enforce") -> str:
    return (
        "trustDomain: cluster.local\n"
        f"mode: {mode}\n"
        "workloads:\n"
        "  - name: agent\n"
        '    match: ["spiffe://cluster.local/ns/agents/*"]\n'
        f"{RULES[rules]}"
    )


def sse(payload: dict, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(payload)}\n\n".encode()


# --- OpenAI chat completions -----------------------------------------------------------


def _chat_chunk(delta: dict, finish: str | None = None) -> bytes:
    return sse({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    })


CHAT_USAGE = sse({
    "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
    "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
})


def chat_text_events(pieces: list[str]) -> list[bytes]:
    return [
        _chat_chunk({"role": "assistant", "content": ""}),
        *(_chat_chunk({"content": p}) for p in pieces),
        _chat_chunk({}, "stop"),
        CHAT_USAGE,
        b"data: [DONE]\n\n",
    ]


def chat_tool_events(name: str, arguments: list[str]) -> list[bytes]:
    call = {"index": 0, "id": "call_1", "type": "function",
            "function": {"name": name, "arguments": ""}}
    return [
        _chat_chunk({"role": "assistant", "content": None, "tool_calls": [call]}),
        *(_chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": a}}]})
          for a in arguments),
        _chat_chunk({}, "tool_calls"),
        CHAT_USAGE,
        b"data: [DONE]\n\n",
    ]


def chat_document(text: str | None, tool: str | None = None, arguments: str = "") -> dict:
    message: dict = {"role": "assistant", "content": text}
    if tool is not None:
        message["tool_calls"] = [{"id": "call_1", "type": "function",
                                  "function": {"name": tool, "arguments": arguments}}]
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "message": message,
                     "finish_reason": "stop" if tool is None else "tool_calls"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
    }


# --- OpenAI responses ------------------------------------------------------------------


def _response(status: str, output: list, usage: dict | None = None) -> dict:
    return {"id": "resp_1", "object": "response", "created_at": 1, "model": "gpt-4o",
            "status": status, "output": output, "usage": usage}


RESPONSES_USAGE = {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12}


def _numbered(events: list[tuple[str, dict]]) -> list[bytes]:
    return [sse({"type": kind, "sequence_number": n, **fields}, kind)
            for n, (kind, fields) in enumerate(events)]


def responses_text_events(pieces: list[str]) -> list[bytes]:
    text = "".join(pieces)
    part = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    done = {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}
    return _numbered([
        ("response.created", {"response": _response("in_progress", [])}),
        ("response.output_item.added", {"output_index": 0, "item": {
            "type": "message", "id": "msg_1", "status": "in_progress", "role": "assistant",
            "content": []}}),
        *(("response.output_text.delta", {**part, "delta": p}) for p in pieces),
        ("response.output_text.done", {**part, "text": text}),
        ("response.output_item.done", {"output_index": 0, "item": done}),
        ("response.completed", {"response": _response("completed", [done], RESPONSES_USAGE)}),
    ])


def _function_call(name: str, arguments: str, status: str) -> dict:
    return {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": name,
            "arguments": arguments, "status": status}


def responses_tool_events(name: str, arguments: list[str]) -> list[bytes]:
    whole = "".join(arguments)
    where = {"item_id": "fc_1", "output_index": 0}
    done = _function_call(name, whole, "completed")
    return _numbered([
        ("response.created", {"response": _response("in_progress", [])}),
        ("response.output_item.added",
         {"output_index": 0, "item": _function_call(name, "", "in_progress")}),
        *(("response.function_call_arguments.delta", {**where, "delta": a}) for a in arguments),
        ("response.function_call_arguments.done", {**where, "arguments": whole}),
        ("response.output_item.done", {"output_index": 0, "item": done}),
        ("response.completed", {"response": _response("completed", [done], RESPONSES_USAGE)}),
    ])


def responses_document(text: str | None, tool: str | None = None, arguments: str = "") -> dict:
    if tool is not None:
        item = _function_call(tool, arguments, "completed")
    else:
        item = {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}]}
    return _response("completed", [item], RESPONSES_USAGE)


# --- Anthropic messages ----------------------------------------------------------------


def _message_start() -> bytes:
    return sse({"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4",
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 1}}}, "message_start")


def _anthropic_end(stop: str) -> list[bytes]:
    return [
        sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        sse({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
             "usage": {"output_tokens": 7}}, "message_delta"),
        sse({"type": "message_stop"}, "message_stop"),
    ]


def anthropic_text_events(pieces: list[str]) -> list[bytes]:
    return [
        _message_start(),
        sse({"type": "content_block_start", "index": 0,
             "content_block": {"type": "text", "text": ""}}, "content_block_start"),
        *(sse({"type": "content_block_delta", "index": 0,
               "delta": {"type": "text_delta", "text": p}}, "content_block_delta")
          for p in pieces),
        *_anthropic_end("end_turn"),
    ]


def anthropic_tool_events(name: str, arguments: list[str]) -> list[bytes]:
    return [
        _message_start(),
        sse({"type": "content_block_start", "index": 0, "content_block": {
            "type": "tool_use", "id": "toolu_1", "name": name, "input": {}}},
            "content_block_start"),
        *(sse({"type": "content_block_delta", "index": 0,
               "delta": {"type": "input_json_delta", "partial_json": a}}, "content_block_delta")
          for a in arguments),
        *_anthropic_end("tool_use"),
    ]


def anthropic_document(text: str | None, tool: str | None = None, arguments: str = "") -> dict:
    block: dict = {"type": "text", "text": text}
    if tool is not None:
        block = {"type": "tool_use", "id": "toolu_1", "name": tool,
                 "input": json.loads(arguments or "{}")}
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4",
            "content": [block], "stop_reason": "end_turn" if tool is None else "tool_use",
            "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 7}}


@dataclass(frozen=True)
class Api:
    name: str  # the provider adapter's name, as the record says it
    path: str
    request: dict
    text_events: Callable[[list[str]], list[bytes]]
    tool_events: Callable[[str, list[str]], list[bytes]]
    document: Callable[..., dict]


APIS = {
    "chat": Api("openai.chat_completions", "/v1/chat/completions",
                {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
                chat_text_events, chat_tool_events, chat_document),
    "responses": Api("openai.responses", "/v1/responses", {"model": "gpt-4o", "input": "hi"},
                     responses_text_events, responses_tool_events, responses_document),
    "anthropic": Api("anthropic.messages", "/v1/messages",
                     {"model": "claude-sonnet-4", "max_tokens": 10,
                      "messages": [{"role": "user", "content": "hi"}]},
                     anthropic_text_events, anthropic_tool_events, anthropic_document),
}


# --- driving an exchange -----------------------------------------------------------------


@dataclass
class Run:
    """An exchange whose request has been judged and forwarded; response steps recorded."""

    api: Api
    rules: str
    mode: str = "enforce"
    stream: bool = True
    exchange: Exchange = field(init=False)

    def __post_init__(self) -> None:
        self.exchange = Exchange(parse_policy(policy_text(self.rules, self.mode), "p.yaml"))
        headers = ((":method", "POST"), (":path", self.api.path), (":authority", "llm"))
        body = json.dumps({**self.api.request, "stream": self.stream}).encode()
        self.exchange.handle(
            HeadersEvent(REQ, headers, False, {"connection.uri_san_peer_certificate": AGENT})
        )
        forwarded = self.exchange.handle(BodyEvent(REQ, body, True))
        assert len(forwarded) == 2, forwarded  # headers and body went on

    def step(self, event: Event) -> list:
        return self.exchange.handle(event)

    def headers(
        self, content_type: str, status: int = 200, encoding: str | None = None
    ) -> list:
        headers = [(":status", str(status)), ("content-type", content_type)]
        if encoding is not None:
            headers.append(("content-encoding", encoding))
        return self.step(HeadersEvent(RESP, tuple(headers), False))

    def body(self, chunk: bytes, end: bool = False) -> list:
        return self.step(BodyEvent(RESP, chunk, end))

    def trailers(self) -> list:
        return self.step(TrailersEvent(RESP, ()))

    @property
    def record(self):  # type: ignore[no-untyped-def]
        return self.exchange.record


def published(steps: list) -> bool:
    return any(isinstance(s, Publish) for s in steps)
