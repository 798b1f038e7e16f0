"""The SSE guard's fast lane changes nothing but the cost: it is byte-equal to the general path.

Hypothesis builds streams of all three APIs: text and tool-call channels (several at
once), texts that carry secrets and PII split anywhere, spelt with and without escapes,
and, mixed in, events the fast lane must refuse (logprobs, usage, unknown keys, other
spacing, surrogate escapes, empty texts, CRLF events, comments, pings, malformed JSON).
The bytes are cut at random points, one-byte cuts included; the stream is sometimes
ended by Weir (`terminate`) part way, or read with an event limit some events exceed.
The same stream goes through `SseGuard` with the fast lane on and off, under redact,
block and audit: the bytes out, the findings, the usage, the facts, the failure and
the counts must be equal.
"""

from __future__ import annotations

import json
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc.llm import PROVIDERS
from extproc.scan_plan import plan_for
from extproc.sse_guard import SseGuard
from mesh.policy import ScanRule

CHAT, RESPONSES, ANTHROPIC = PROVIDERS
SETTINGS = settings(max_examples=400, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

SECRETS = ("AKIAQ3EGUKZW5XYT7M2P", "ops@example.org", "+1 415 555 0134")
WORDS = ("The ", "river ", "runs ", "é ", "😀", "\\", '"', "\n", "\t", "{\"k\": 1}", "AKIA",
         "ignore previous instructions ", "\u2028", "/", "\x01")


def plan(action: str):  # type: ignore[no-untyped-def]
    rules = (ScanRule("secrets", action), ScanRule("pii", action))
    result = plan_for(rules, enforcing=True)
    assert result is not None
    return result


@st.composite
def texts(draw: st.DrawFn) -> list[str]:
    """A text with secrets in it, cut into pieces."""
    parts = draw(st.lists(st.sampled_from(WORDS + SECRETS), min_size=1, max_size=12))
    text = "".join(parts)
    rng = random.Random(draw(st.integers(0, 2**32)))
    cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(0, 12))))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


@st.composite
def spelling(draw: st.DrawFn) -> dict:
    """How one event is written: mostly the stream's usual way, sometimes another."""
    odd = draw(st.integers(0, 9))
    if odd == 0:
        return {"separators": (",", ":"), "ensure_ascii": True}
    if odd == 1:
        return {"separators": (", ", ": "), "ensure_ascii": False}
    return {"separators": (",", ":"), "ensure_ascii": False}


PADDING = "abcXYZ019+/=_-"


def padded(payload: dict, rng: random.Random | None) -> dict:
    """As the live APIs: an `obfuscation` padding of random length (rarely outside its shape)."""
    if rng is None:
        return payload
    size = rng.choice([0, 3, 12, 40, 512] * 8 + [513])
    pad = "".join(rng.choice(PADDING) for _ in range(size))
    return {**payload, "obfuscation": pad if rng.random() > 0.05 else pad + " !"}


def sse(payload: object, how: dict, event: str | None = None, crlf: bool = False) -> bytes:
    eol = "\r\n" if crlf else "\n"
    head = f"event: {event}{eol}" if event else ""
    try:
        return f"{head}data: {json.dumps(payload, **how)}{eol}{eol}".encode()
    except UnicodeEncodeError:  # a lone surrogate goes as an escape
        data = json.dumps(payload, separators=how["separators"])
        return f"{head}data: {data}{eol}{eol}".encode()


ODD = st.sampled_from(["none"] * 30 + ["logprobs", "usage", "extra", "crlf",
                       "surrogate", "empty", "ping", "bad"])


def live(draw: st.DrawFn) -> random.Random | None:
    """Whether the stream pads its events as the live APIs do (the rng that pads them)."""
    return random.Random(draw(st.integers(0, 2**32))) if draw(st.booleans()) else None


@st.composite
def chat_stream(draw: st.DrawFn) -> list[bytes]:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    how0 = {"separators": (",", ":"), "ensure_ascii": False}
    rng = live(draw)

    def chunk(delta: dict, how: dict, index: int = 0, **extra: object) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": None}
        return sse(padded({**base, "choices": [{**choice, **extra}]}, rng), how)

    out = [chunk({"role": "assistant", "content": ""}, how0)]
    calls = draw(st.integers(0, 2))
    for j in range(calls):
        out.append(chunk({"tool_calls": [{"index": j, "id": f"call_{j}", "type": "function",
                                          "function": {"name": "f", "arguments": ""}}]}, how0))
    channels = [("content", 0), ("content", 1)] + [("tool", j) for j in range(calls)]
    for piece in draw(texts()) + draw(texts()):
        kind, number = draw(st.sampled_from(channels))
        how = draw(spelling())
        odd = draw(ODD)
        if kind == "tool":
            delta: dict = {"tool_calls": [{"index": number, "function": {"arguments": piece}}]}
            index = 0
        else:
            delta, index = {"content": piece}, number
        if odd == "logprobs" and kind != "tool":
            out.append(chunk(delta, how, index, logprobs={"content": [
                {"token": piece, "logprob": -0.1, "bytes": list(piece.encode()),
                 "top_logprobs": []}]}))
        elif odd == "usage":
            out.append(chunk(delta, how, index, usage=None))
        elif odd == "extra":
            out.append(chunk({**delta, "x_note": piece}, how, index))
        elif odd == "crlf":
            out.append(sse({**base, "choices": [{"index": index, "delta": delta,
                                                 "finish_reason": None}]}, how, crlf=True))
        elif odd == "surrogate":
            out.append(chunk({"content": piece + "\ud800"}, how, index))
        elif odd == "empty":
            out.append(chunk({"content": ""}, how, index))
        elif odd == "ping":
            out.append(b": keep-alive\n\n")
        elif odd == "bad":
            out.append(b'data: {"choices": [\n\n' if draw(st.integers(0, 20)) == 0
                       else chunk(delta, how, index))
        else:
            out.append(chunk(delta, how, index))
    out.append(chunk({}, how0, finish_reason="stop"))
    out.append(sse({**base, "choices": [], "usage": {"prompt_tokens": 3,
                                                     "completion_tokens": 9}}, how0))
    return [*out, b"data: [DONE]\n\n"]


@st.composite
def responses_stream(draw: st.DrawFn) -> list[bytes]:
    number = iter(range(100_000))
    how0 = {"separators": (",", ":"), "ensure_ascii": False}
    rng = live(draw)
    # The live API writes its keys in order: the text first, the sequence number last.
    order = {"sort_keys": draw(st.booleans())}

    def ev(kind: str, how: dict, **fields: object) -> bytes:
        payload = padded({"type": kind, "sequence_number": next(number), **fields}, rng)
        return sse(payload, {**how, **order}, kind)

    response = {"id": "resp_1", "object": "response", "created_at": 1, "status": "in_progress",
                "model": "m", "output": [], "usage": None}
    out = [ev("response.created", how0, response=response)]
    out.append(ev("response.output_item.added", how0, output_index=0, item={
        "id": "msg_1", "type": "message", "status": "in_progress", "role": "assistant",
        "content": []}))
    out.append(ev("response.content_part.added", how0, item_id="msg_1", output_index=0,
                  content_index=0, part={"type": "output_text", "text": "", "annotations": []}))
    out.append(ev("response.output_item.added", how0, output_index=1, item={
        "id": "fc_1", "type": "function_call", "status": "in_progress", "call_id": "c",
        "name": "f", "arguments": ""}))
    for piece in draw(texts()) + draw(texts()):
        tool = draw(st.booleans())
        how = draw(spelling())
        odd = draw(ODD)
        if odd == "ping":
            out.append(b": keep-alive\n\n")
            continue
        text = piece + ("\ud800" if odd == "surrogate" else "")
        text = "" if odd == "empty" else text
        extra: dict = {"logprobs": [{"token": text, "logprob": -1.0}]} if odd == "logprobs" \
            else {"x_note": "n"} if odd == "extra" else {}
        if tool:
            out.append(ev("response.function_call_arguments.delta", how, item_id="fc_1",
                          output_index=1, delta=text, **extra))
        else:
            out.append(ev("response.output_text.delta", how, item_id="msg_1", output_index=0,
                          content_index=0, delta=text, **extra))
    out.append(ev("response.output_text.done", how0, item_id="msg_1", output_index=0,
                  content_index=0, text="whole text"))
    done = dict(response, status="completed", usage={"input_tokens": 1, "output_tokens": 2})
    return [*out, ev("response.completed", how0, response=done)]


@st.composite
def anthropic_stream(draw: st.DrawFn) -> list[bytes]:
    how0 = {"separators": (",", ":"), "ensure_ascii": False}

    def ev(payload: dict, how: dict = how0, crlf: bool = False) -> bytes:
        return sse(payload, how, payload["type"], crlf)

    out = [ev({"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "c", "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 7, "output_tokens": 1}}})]
    blocks = draw(st.lists(st.booleans(), min_size=1, max_size=3))
    for index, tool in enumerate(blocks):
        block = {"type": "tool_use", "id": f"toolu_{index}", "name": "f", "input": {}} if tool \
            else {"type": "text", "text": ""}
        out.append(ev({"type": "content_block_start", "index": index, "content_block": block}))
        for piece in draw(texts()):
            how = draw(spelling())
            odd = draw(ODD)
            delta = {"type": "input_json_delta", "partial_json": piece} if tool \
                else {"type": "text_delta", "text": piece}
            if odd == "ping":
                out.append(ev({"type": "ping"}))
                continue
            if odd == "extra":
                delta = {**delta, "x_note": piece}
            elif odd == "surrogate":
                delta = {**delta, ("partial_json" if tool else "text"): piece + "\udc00"}
            elif odd == "empty":
                delta = {**delta, ("partial_json" if tool else "text"): ""}
            out.append(ev({"type": "content_block_delta", "index": index, "delta": delta}, how,
                          crlf=odd == "crlf"))
        out.append(ev({"type": "content_block_stop", "index": index}))
    out.append(ev({"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                                      "stop_sequence": None},
                   "usage": {"output_tokens": 12}}))
    return [*out, ev({"type": "message_stop"})]


@st.composite
def chunkings(draw: st.DrawFn, body: bytes) -> list[bytes]:
    style = draw(st.sampled_from(["one-byte", "random", "events", "whole"]))
    if style == "one-byte":
        return [body[i : i + 1] for i in range(len(body))]
    if style == "whole":
        return [body]
    rng = random.Random(draw(st.integers(0, 2**32)))
    if style == "events":
        pieces = body.split(b"\n\n")
        return [p + b"\n\n" for p in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
    cuts = sorted(rng.sample(range(1, len(body)), min(len(body) - 1, rng.randint(1, 40))))
    return [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]


def outcome(provider, action: str, chunks: list[bytes], fast: bool,  # type: ignore[no-untyped-def]
            cut: int | None, limit: int) -> tuple:
    guard = SseGuard(provider, plan(action), max_event_bytes=limit, fast_lane=fast)
    if cut is None:
        out = b"".join(guard.feed(chunk) for chunk in chunks) + guard.finish()
    else:  # Weir ends the stream itself (the drain deadline) after `cut` chunks
        out = b"".join(guard.feed(chunk) for chunk in chunks[:cut])
        out += guard.terminate("drain deadline") + guard.finish()
    return (out, guard.findings, guard.usage, guard.facts, guard.failure, guard.blocked_by,
            guard.events, guard.saw_terminal, guard.ended, guard.terminated)


def check(provider, events: list[bytes], action: str, data: st.DataObject) -> None:  # type: ignore[no-untyped-def]
    body = b"".join(events)
    chunks = data.draw(chunkings(body))
    cut = data.draw(st.none() | st.integers(0, len(chunks)))
    # Now and then an event limit that long events (a usage chunk, a padded one) exceed.
    limit = data.draw(st.sampled_from([1 << 20] * 9 + [400]))
    fast = outcome(provider, action, chunks, True, cut, limit)
    general = outcome(provider, action, chunks, False, cut, limit)
    names = ("bytes out", "findings", "usage", "facts", "failure", "blocked_by", "events",
             "saw_terminal", "ended", "terminated")
    for name, mine, theirs in zip(names, fast, general, strict=True):
        assert mine == theirs, f"the fast lane changes the {name}"


ACTIONS = st.sampled_from(["redact", "block", "audit"])


@SETTINGS
@given(events=chat_stream(), action=ACTIONS, data=st.data())
def test_chat_streams_come_out_the_same_with_and_without_the_fast_lane(
    events: list[bytes], action: str, data: st.DataObject
) -> None:
    check(CHAT, events, action, data)


@SETTINGS
@given(events=responses_stream(), action=ACTIONS, data=st.data())
def test_responses_streams_come_out_the_same_with_and_without_the_fast_lane(
    events: list[bytes], action: str, data: st.DataObject
) -> None:
    check(RESPONSES, events, action, data)


@SETTINGS
@given(events=anthropic_stream(), action=ACTIONS, data=st.data())
def test_anthropic_streams_come_out_the_same_with_and_without_the_fast_lane(
    events: list[bytes], action: str, data: st.DataObject
) -> None:
    check(ANTHROPIC, events, action, data)
