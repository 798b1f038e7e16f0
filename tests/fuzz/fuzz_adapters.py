"""The provider adapters over arbitrary request bodies, response bodies and stream events.

Each either works or raises its documented error (BadRequestBody, BadResponseBody);
whatever parses can be rewritten, and the rewrite is JSON again.
"""

from __future__ import annotations

import json

from _inputs import split_chunks

from extproc.llm import PROVIDERS, BadRequestBody
from extproc.llm.base import BadResponseBody, parse_json_object, parse_response_body
from extproc.sse import SseError, SseParser

SEEDS = [
    b'\x00{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"},'
    b'{"role":"user","content":[{"type":"text","text":"x"}]}]}',
    b'\x01{"model":"o3","input":[{"role":"user","content":[{"type":"input_text","text":"a"}]}],'
    b'"instructions":"b"}',
    b'\x02{"model":"claude","system":[{"type":"text","text":"s"}],"messages":[{"role":"user",'
    b'"content":[{"type":"tool_result","content":[{"type":"text","text":"t"}]}]}]}',
    b'\x00{"choices":[{"index":0,"message":{"role":"assistant","content":"hi",'
    b'"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}}]}',
    b'\x02{"content":[{"type":"text","text":"hi"}],"usage":{"input_tokens":1,"output_tokens":2}}',
]


def TestOneInput(data: bytes) -> None:
    selector, _ = split_chunks(data)
    body = data[1:]
    provider = PROVIDERS[selector % len(PROVIDERS)]

    try:
        document = parse_json_object(body)
        provider.parse_request(body)
    except BadRequestBody:
        document = None
    if document is not None:
        parts = provider.request_texts(document)
        replacements = {part.locator: "[R]" for part in parts}
        json.loads(provider.rewrite_request(document, replacements))

    try:
        response = parse_response_body(body)
    except BadResponseBody:
        response = None
    if response is not None:
        provider.usage(response)
        texts = provider.response_texts(response)
        json.loads(provider.rewrite_response(response, {t.locator: "" for t in texts}))

    parser = SseParser(max_event_bytes=1 << 16)
    try:
        events = parser.feed(b"data: " + body.replace(b"\n", b" ") + b"\n\n") + parser.finish()
    except SseError:
        return
    for event in events:
        try:
            view = provider.read_event(event)
        except BadResponseBody:
            continue
        provider.usage(view)
        provider.is_terminal(view)
        if view.deltas:
            provider.rewrite_event(view, {d.channel: "x\"\\\n" for d in view.deltas})
