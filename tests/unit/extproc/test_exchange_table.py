"""Whole exchanges as tables: policy × provider × response events -> the exact steps.

Each case drives an `Exchange` (sans-I/O, no gRPC) through an allowed request, then
the response headers, body chunks and trailers, and compares what `Exchange.handle`
returns: `ContinueHeaders`, `StreamBody`, `ContinueTrailers`, `Respond` and `Publish`,
in order. A guarded stream's bytes are compared with a reference `SseGuard` fed the same
chunks (what the guard releases is its own business, tested beside it; that the
exchange hands exactly that on, with the right end of stream and publication, is this
file's); every other body is compared byte for byte.
"""

from __future__ import annotations

import json

import pytest
from exchange_cases import APIS, SECRET, Api, Run, published

from extproc.events import ContinueHeaders, ContinueTrailers, Direction, Respond, StreamBody
from extproc.exchange_record import Publish
from extproc.llm import PROVIDERS
from extproc.llm_tools import TOOLS_SCANNER
from extproc.scan_plan import plan_for
from extproc.sse_guard import SseGuard
from mesh.mcp_policy import ToolRules
from mesh.policy import ScanRule

RESP = Direction.RESPONSE
SSE, JSON = "text/event-stream", "application/json"
PASS_HEADERS = ContinueHeaders(RESP)
STREAM_HEADERS = ContinueHeaders(RESP, remove_headers=("content-length",))
PROVIDER = {p.name: p for p in PROVIDERS}
API_NAMES = sorted(APIS)


def chunks_of(events: list[bytes], size: int) -> list[bytes]:
    data = b"".join(events)
    return [data[i : i + size] for i in range(0, len(data), size)]


def reference_guard(api: Api, action: str, tools: list[str] | None = None) -> SseGuard:
    plan = plan_for((ScanRule("secrets", action),), enforcing=True)
    assert plan is not None
    rules = ToolRules(tuple(tools)) if tools is not None else None
    return SseGuard(PROVIDER[api.name], plan, tools=rules)


def body_steps(run: Run, chunks: list[bytes]) -> list[list]:
    return [run.body(c, i == len(chunks) - 1) for i, c in enumerate(chunks)]


def released(steps: list) -> bytes:
    return b"".join(s.chunk for s in steps if isinstance(s, StreamBody))


def error_payloads(data: bytes) -> list[dict]:
    out = []
    for line in data.decode().splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            payload = json.loads(line[6:])
            if "error" in payload or payload.get("type") in ("error", "response.failed"):
                out.append(payload)
    return out


def error_message(payload: dict) -> str:
    error = payload.get("error")
    return error["message"] if isinstance(error, dict) else payload["message"]


# --- no response rules: the answer flows, metered -----------------------------------------


@pytest.mark.parametrize("name", API_NAMES)
@pytest.mark.parametrize("size", [1, 40, 100_000])
def test_without_rules_each_chunk_flows_as_it_came_and_the_record_goes_at_the_terminal_event(
    name: str, size: int
) -> None:
    api = APIS[name]
    run = Run(api, "no-rules")
    assert run.headers(SSE) == [PASS_HEADERS]
    events = api.text_events(["Hello", " world"])
    # A comment after the provider's end: the record must not wait for it.
    chunks = chunks_of([*events, b": after the end\n\n"], size)
    steps = body_steps(run, chunks)
    terminal_at = next(i for i, s in enumerate(steps) if published(s))
    for i, (chunk, step) in enumerate(zip(chunks, steps, strict=True)):
        expected = [StreamBody(RESP, chunk, i == len(chunks) - 1)]
        if i == terminal_at:
            expected = [Publish(run.record), *expected]
        assert step == expected
    # Published with the chunk that completes the provider's end event, not at Envoy's end.
    data = b"".join(chunks)
    through_end = len(b"".join(events))
    assert len(b"".join(chunks[:terminal_at])) < through_end <= len(
        b"".join(chunks[: terminal_at + 1])
    )
    assert released([s for step in steps for s in step]) == data
    assert (run.record.input_tokens, run.record.output_tokens) == (5, 7)
    assert run.record.verdict == "allow" and run.record.findings == []


@pytest.mark.parametrize("name", API_NAMES)
def test_without_rules_a_json_answer_flows_and_is_metered(name: str) -> None:
    api = APIS[name]
    run = Run(api, "no-rules", stream=False)
    assert run.headers(JSON) == [PASS_HEADERS]
    body = json.dumps(api.document("Hello")).encode()
    assert run.body(body[:10]) == [StreamBody(RESP, body[:10], False)]
    assert run.body(body[10:], True) == [Publish(run.record), StreamBody(RESP, body[10:], True)]
    assert (run.record.input_tokens, run.record.output_tokens) == (5, 7)


@pytest.mark.parametrize("name", API_NAMES)
def test_without_rules_trailers_close_the_answer_and_publish_it(name: str) -> None:
    api = APIS[name]
    run = Run(api, "no-rules", stream=False)
    run.headers(JSON)
    body = json.dumps(api.document("Hello")).encode()
    assert run.body(body) == [StreamBody(RESP, body, False)]
    assert run.trailers() == [Publish(run.record), ContinueTrailers(RESP)]


# --- guarded streams: the exchange hands on exactly what the guard releases ---------------


@pytest.mark.parametrize("name", API_NAMES)
@pytest.mark.parametrize("action", ["redact", "block", "audit"])
@pytest.mark.parametrize("size", [1, 17, 100_000])
def test_a_guarded_stream_releases_exactly_what_the_guard_releases(
    name: str, action: str, size: int
) -> None:
    api = APIS[name]
    run = Run(api, {"audit": "audit-only"}.get(action, action))
    assert run.headers(SSE) == [STREAM_HEADERS]
    chunks = chunks_of(api.text_events(["key ", SECRET[:7], SECRET[7:], " done"]), size)
    guard = reference_guard(api, action)
    steps = []
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        out = guard.feed(chunk) + (guard.finish() if last else b"")
        step = run.body(chunk, last)
        steps.append(step)
        actions = [s for s in step if not isinstance(s, Publish)]
        if guard.terminated:
            assert actions == [StreamBody(RESP, out, True)]
            break
        assert actions == ([StreamBody(RESP, out, last)] if out or last else [])
    everything = released([s for step in steps for s in step])
    assert sum(isinstance(s, Publish) for step in steps for s in step) == 1
    record = run.record
    if action == "block":
        assert SECRET[:7] not in everything.decode()
        assert "response blocked by policy" in error_message(error_payloads(everything)[0])
        assert record.verdict == "block"
    elif action == "redact":
        assert SECRET not in everything.decode() and record.verdict == "allow"
    else:
        assert everything == b"".join(chunks) and record.verdict == "allow"
    assert [f.scanner for f in record.findings] == ["secrets"]


@pytest.mark.parametrize("name", API_NAMES)
def test_a_guarded_stream_ended_by_trailers_flushes_then_continues_the_trailers(name: str):
    api = APIS[name]
    run = Run(api, "redact")
    run.headers(SSE)
    data = b"".join(api.text_events(["one ", "two"]))
    guard = reference_guard(api, "redact")
    assert [s for s in run.body(data) if not isinstance(s, Publish)] == (
        [StreamBody(RESP, out, False)] if (out := guard.feed(data)) else []
    )
    rest = guard.finish()
    tail = run.trailers()
    assert [s for s in tail if not isinstance(s, Publish)] == [
        *([StreamBody(RESP, rest, False)] if rest else []), ContinueTrailers(RESP)
    ]


# --- judged JSON answers -----------------------------------------------------------------


@pytest.mark.parametrize("name", API_NAMES)
def test_a_clean_json_answer_is_withheld_then_released_whole_with_its_headers(name: str):
    api = APIS[name]
    run = Run(api, "block", stream=False)
    assert run.headers(JSON) == []
    body = json.dumps(api.document("all clear")).encode()
    assert run.body(body[:5]) == []
    assert run.body(body[5:], True) == [
        Publish(run.record), PASS_HEADERS, StreamBody(RESP, body, True)
    ]
    assert run.record.verdict == "allow" and run.record.output_tokens == 7


@pytest.mark.parametrize("name", API_NAMES)
def test_a_json_answer_with_a_secret_is_redacted_in_place(name: str):
    api = APIS[name]
    run = Run(api, "redact", stream=False)
    run.headers(JSON)
    body = json.dumps(api.document(f"key {SECRET} here")).encode()
    [publish, headers, out] = run.body(body, True)
    assert publish == Publish(run.record)
    assert headers == STREAM_HEADERS  # its length changed
    assert isinstance(out, StreamBody) and out.end_of_stream
    assert SECRET not in out.chunk.decode() and b" here" in out.chunk
    json.loads(out.chunk)


@pytest.mark.parametrize("name", API_NAMES)
def test_a_json_answer_with_a_blocked_secret_is_a_403_in_the_providers_format(name: str):
    api = APIS[name]
    run = Run(api, "block", stream=False)
    run.headers(JSON)
    body = json.dumps(api.document(f"key {SECRET}")).encode()
    [publish, respond] = run.body(body, True)
    assert publish == Publish(run.record)
    assert isinstance(respond, Respond) and respond.status == 403
    assert respond.headers == (("content-type", "application/json"), ("x-weir-verdict", "block"))
    assert respond.details == "weir_permission_denied"
    error = json.loads(respond.body)["error"]
    assert "response blocked by policy: rule" in error["message"]
    assert SECRET not in respond.body.decode()
    assert error["type"] == "permission_error"
    assert run.exchange.closed and run.record.verdict == "block"


@pytest.mark.parametrize("name", API_NAMES)
@pytest.mark.parametrize(("rules", "verdict"), [("redact", "allow"), ("block", "block")])
def test_the_upstreams_error_reply_is_judged_whole(name: str, rules: str, verdict: str):
    api = APIS[name]
    run = Run(api, rules, stream=True)
    assert run.headers(JSON, status=500) == []
    body = json.dumps({"error": {"message": f"bad key {SECRET}", "type": "server_error"}}).encode()
    steps = run.body(body, True)
    assert steps[0] == Publish(run.record)
    if verdict == "block":
        assert isinstance(steps[1], Respond) and steps[1].status == 403
    else:
        assert steps[1] == STREAM_HEADERS
        assert SECRET not in steps[2].chunk.decode() and steps[2].end_of_stream
    assert run.record.verdict == verdict and run.record.status == (403 if rules == "block" else 500)


@pytest.mark.parametrize("name", API_NAMES)
def test_without_rules_the_upstreams_error_reply_flows_unjudged(name: str):
    api = APIS[name]
    run = Run(api, "no-rules")
    assert run.headers(JSON, status=429) == [PASS_HEADERS]
    body = b'{"error": {"message": "slow down"}}'
    assert run.body(body, True) == [Publish(run.record), StreamBody(RESP, body, True)]


# --- what cannot be read --------------------------------------------------------------------


@pytest.mark.parametrize("name", API_NAMES)
@pytest.mark.parametrize(
    ("rules", "refused"),
    [("no-rules", False), ("audit-only", False), ("block", True), ("redact", True),
     ("tools-only", True)],
)
def test_a_compressed_answer_flows_only_where_nothing_must_be_read(
    name: str, rules: str, refused: bool
) -> None:
    api = APIS[name]
    run = Run(api, rules)
    steps = run.headers(SSE, encoding="gzip")
    if refused:
        [publish, respond] = steps
        assert publish == Publish(run.record)
        assert isinstance(respond, Respond) and respond.status == 503
        assert "compressed (gzip)" in json.loads(respond.body)["error"]["message"]
        assert run.record.verdict == "error"
        return
    assert steps == [PASS_HEADERS]
    assert run.body(b"\x1f\x8b\x08\x00", True) == [
        Publish(run.record), StreamBody(RESP, b"\x1f\x8b\x08\x00", True)
    ]
    assert run.record.verdict == "allow"
    assert run.record.reason.startswith("not scanned") == (rules == "audit-only")


# --- the drain deadline -----------------------------------------------------------------------


@pytest.mark.parametrize("name", API_NAMES)
@pytest.mark.parametrize("rules", ["no-rules", "block", "tools-only"])
def test_the_drain_deadline_ends_an_open_stream_in_band_and_publishes_at_the_end(
    name: str, rules: str
) -> None:
    api = APIS[name]
    run = Run(api, rules)
    run.headers(SSE)
    events = api.text_events(["Hello"])
    run.body(events[0] + events[1])
    [ending] = run.exchange.handle_deadline("weir is shutting down")
    assert isinstance(ending, StreamBody) and ending.end_of_stream
    [error, *_] = error_payloads(ending.chunk)
    assert "weir is shutting down" in error_message(error)
    assert run.body(events[2], True) == []  # the rest is swallowed, nothing published yet
    assert run.exchange.handle_end("drain_deadline") == [Publish(run.record)]
    assert run.record.verdict == "error"
    assert run.record.reason == "ext_proc stream ended: drain_deadline"
    assert run.exchange.handle_end(None) == []


@pytest.mark.parametrize("name", API_NAMES)
def test_the_drain_deadline_refuses_a_withheld_json_answer_with_a_503(name: str) -> None:
    api = APIS[name]
    run = Run(api, "block", stream=False)
    run.headers(JSON)
    run.body(b'{"id": ')
    [respond] = run.exchange.handle_deadline("weir is shutting down")
    assert isinstance(respond, Respond) and respond.status == 503
    assert run.exchange.closed


def test_a_stream_that_ends_with_a_cancel_keeps_its_verdict_once_decided() -> None:
    run = Run(APIS["chat"], "no-rules")
    run.headers(SSE)
    run.body(APIS["chat"].text_events(["x"])[0])
    assert run.exchange.handle_end("cancelled") == [Publish(run.record)]
    assert run.record.verdict == "allow"


def test_a_crash_mid_answer_is_published_as_an_error() -> None:
    run = Run(APIS["chat"], "no-rules")
    run.headers(SSE)
    assert run.exchange.handle_end("internal") == [Publish(run.record)]
    assert run.record.verdict == "error" and run.record.reason == "ext_proc stream ended: internal"


# --- tools: a workload with `tools` and no response rules (issue 15's fail-open fix) -------


def tool_stream(api: Api, tool: str) -> list[bytes]:
    return api.tool_events(tool, ['{"repo": ', '"prod", "force": true}'])


@pytest.mark.parametrize("name", API_NAMES)
@pytest.mark.parametrize("size", [1, 23, 100_000])
def test_tools_only_a_streamed_call_of_a_forbidden_tool_ends_in_band_before_its_arguments(
    name: str, size: int
) -> None:
    api = APIS[name]
    run = Run(api, "tools-only")
    assert run.headers(SSE) == [STREAM_HEADERS]
    events = tool_stream(api, "delete_repo")
    naming = next(i for i, e in enumerate(events) if b"delete_repo" in e)
    chunks = chunks_of(events, size)
    steps: list = []
    for i, chunk in enumerate(chunks):
        step = run.body(chunk, i == len(chunks) - 1)
        steps.extend(step)
        if any(isinstance(s, StreamBody) and s.end_of_stream for s in step):
            assert step[0] == Publish(run.record)
            break
    out = released(steps)
    before = b"".join(events[:naming])
    # Only whole events before the one naming the tool, then the provider's ending.
    assert out.startswith(before)
    assert b"prod" not in out and b"delete_repo" not in out[: len(before)]
    [error, *_] = error_payloads(out[len(before):])
    assert "tool call blocked by policy: tool 'delete_repo' is not in the workload's tools" in (
        error_message(error)
    )
    if name == "chat":
        assert out.endswith(b"data: [DONE]\n\n")
    if name == "responses":
        assert error["sequence_number"] == naming  # numbered on from the last event released
    assert run.body(b"data: more\n\n", True) == []
    record = run.record
    assert record.verdict == "block"
    assert [(f.scanner, f.rule) for f in record.findings] == [(TOOLS_SCANNER, "delete_repo")]


@pytest.mark.parametrize("name", API_NAMES)
@pytest.mark.parametrize("size", [1, 23, 100_000])
def test_tools_only_a_streamed_call_of_an_allowed_tool_goes_through_whole_events_unchanged(
    name: str, size: int
) -> None:
    api = APIS[name]
    run = Run(api, "tools-only")
    run.headers(SSE)
    events = tool_stream(api, "get_weather")
    chunks = chunks_of(events, size)
    steps = [s for i, c in enumerate(chunks) for s in run.body(c, i == len(chunks) - 1)]
    bodies = [s for s in steps if isinstance(s, StreamBody)]
    assert b"".join(b.chunk for b in bodies) == b"".join(events)
    assert [b.end_of_stream for b in bodies][-1] is True
    # Whole events only: every chunk that goes out ends at an event's end.
    assert all(b.chunk.endswith(b"\n\n") for b in bodies if b.chunk)
    assert sum(isinstance(s, Publish) for s in steps) == 1
    assert run.record.verdict == "allow" and run.record.findings == []
    assert (run.record.input_tokens, run.record.output_tokens) == (5, 7)


@pytest.mark.parametrize("name", API_NAMES)
def test_tools_only_a_json_answer_calling_a_forbidden_tool_is_a_403_naming_it(name: str):
    api = APIS[name]
    run = Run(api, "tools-only", stream=False)
    assert run.headers(JSON) == []
    body = json.dumps(api.document(None, "delete_repo", '{"repo": "prod"}')).encode()
    [publish, respond] = run.body(body, True)
    assert publish == Publish(run.record)
    assert isinstance(respond, Respond) and respond.status == 403
    message = json.loads(respond.body)["error"]["message"]
    assert "it calls tool 'delete_repo', which is not in the workload's tools" in message
    assert b"prod" not in respond.body
    assert run.record.verdict == "block"
    assert [(f.scanner, f.rule) for f in run.record.findings] == [(TOOLS_SCANNER, "delete_repo")]


@pytest.mark.parametrize("name", API_NAMES)
def test_tools_only_a_json_answer_calling_an_allowed_tool_goes_on_unchanged(name: str):
    api = APIS[name]
    run = Run(api, "tools-only", stream=False)
    run.headers(JSON)
    body = json.dumps(api.document(None, "search_docs", '{"q": "envoy"}')).encode()
    assert run.body(body, True) == [Publish(run.record), PASS_HEADERS, StreamBody(RESP, body, True)]
    assert run.record.verdict == "allow" and run.record.output_tokens == 7


@pytest.mark.parametrize("name", API_NAMES)
def test_tools_only_in_audit_mode_a_forbidden_call_is_recorded_and_nothing_is_held(name: str):
    api = APIS[name]
    run = Run(api, "tools-only", mode="audit")
    run.headers(SSE)
    events = tool_stream(api, "delete_repo")
    chunks = chunks_of(events, 9)
    steps = [s for i, c in enumerate(chunks) for s in run.body(c, i == len(chunks) - 1)]
    assert [s for s in steps if isinstance(s, StreamBody)] == [
        StreamBody(RESP, c, i == len(chunks) - 1) for i, c in enumerate(chunks)
    ]
    assert run.record.verdict == "audit" and "delete_repo" in run.record.reason


@pytest.mark.parametrize("name", API_NAMES)
def test_tools_only_an_unreadable_event_ends_the_stream_since_it_could_hide_a_call(name: str):
    api = APIS[name]
    run = Run(api, "tools-only")
    run.headers(SSE)
    first = api.text_events(["hi"])[0]
    steps = run.body(first + b'data: {"name": "broken\n\n')
    [publish, ending] = steps
    assert publish == Publish(run.record)
    assert isinstance(ending, StreamBody) and ending.end_of_stream
    assert ending.chunk.startswith(first)
    assert b"broken" not in ending.chunk
    assert "unreadable stream event" in error_message(error_payloads(ending.chunk)[0])
    assert run.record.verdict == "error"


def test_tools_only_a_tool_name_spelled_with_escapes_is_still_read() -> None:
    api = APIS["chat"]
    run = Run(api, "tools-only")
    run.headers(SSE)
    events = tool_stream(api, "delete_repo")
    escaped = events[0].replace(b'"name"', b'"n\\u0061me"')
    assert escaped != events[0]
    [publish, ending] = run.body(escaped)
    assert publish == Publish(run.record)
    assert isinstance(ending, StreamBody) and ending.end_of_stream
    assert b"delete_repo" not in ending.chunk.split(b"weir:")[0]
    assert run.record.verdict == "block"


@pytest.mark.parametrize("name", API_NAMES)
def test_with_tools_and_response_rules_the_guard_checks_the_tool_calls(name: str):
    api = APIS[name]
    run = Run(api, "tools-and-redact")
    run.headers(SSE)
    out = released(run.body(b"".join(tool_stream(api, "delete_repo")), True))
    assert b"prod" not in out
    assert "tool call blocked by policy: tool 'delete_repo'" in error_message(
        error_payloads(out)[0]
    )
    assert run.record.verdict == "block"
    assert (TOOLS_SCANNER, "delete_repo") in [(f.scanner, f.rule) for f in run.record.findings]


@pytest.mark.parametrize("name", API_NAMES)
def test_tools_only_a_non_2xx_reply_flows(name: str):
    api = APIS[name]
    run = Run(api, "tools-only")
    assert run.headers(JSON, status=500) == [PASS_HEADERS]
    body = b'{"error": {"message": "oops"}}'
    assert run.body(body, True) == [Publish(run.record), StreamBody(RESP, body, True)]


@pytest.mark.parametrize("name", API_NAMES)
@pytest.mark.parametrize("rules", ["tools-only", "tools-and-redact"])
def test_in_audit_mode_a_json_answer_calling_a_forbidden_tool_goes_on_and_is_recorded(
    name: str, rules: str
) -> None:
    api = APIS[name]
    run = Run(api, rules, mode="audit", stream=False)
    run.headers(JSON)
    body = json.dumps(api.document(None, "delete_repo", '{"repo": "prod"}')).encode()
    assert run.body(body, True) == [Publish(run.record), PASS_HEADERS, StreamBody(RESP, body, True)]
    assert run.record.verdict == "audit" and "'delete_repo'" in run.record.reason
    assert (TOOLS_SCANNER, "delete_repo") in [(f.scanner, f.rule) for f in run.record.findings]


@pytest.mark.parametrize("name", API_NAMES)
def test_in_audit_mode_the_guard_lets_a_forbidden_tool_call_through_and_records_an_audit(
    name: str,
) -> None:
    api = APIS[name]
    run = Run(api, "tools-and-redact", mode="audit")
    run.headers(SSE)
    data = b"".join(tool_stream(api, "delete_repo"))
    assert released(run.body(data, True)) == data
    assert run.record.verdict == "audit" and "'delete_repo'" in run.record.reason
