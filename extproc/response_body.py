"""The response body of one exchange, handled by one processor chosen at the response headers.

`select_response_body` reads the reply's status, type and encoding against the
workload's response plan and `tools`, and returns the processor for the body and what
answers the headers now (`Selected`). Each processor is sans-I/O and implements
`ResponseBody`:
- `feed(chunk, end_of_stream)` and `trailers()` (the body ended with trailers) give
  the actions for Envoy, or a `Refuse` that the exchange turns into a local reply in
  the caller's error format;
- `terminate(reason)` ends the answer in the provider's terms when Weir's drain
  deadline passes (an in-band error event, a 503, or nothing when no such ending
  exists); `stop()` freezes it when the exchange ends the answer itself (a spent
  budget);
- `contribute(record)` writes what the processor learned since its last contribution
  into the exchange's record (findings, usage, facts, held bytes, verdict and reason).
  The exchange calls it after every other call, so the record is current whenever
  the exchange publishes it.

The processors, one per way an answer can be handled:
- `PassThrough`: nothing to scan; the bytes flow as they come, and a 2xx LLM answer is
  metered for its usage (`UsageMeter`);
- `GuardedStream`: an SSE token stream through `SseGuard`;
- `JudgedDocument`: a JSON answer (or the upstream's error reply) held whole with its
  headers withheld and judged, so a `block` is still a clean 403;
- `ToolCheckedStream`: a workload that restricts `tools` but has no response rules.
  Its token stream is framed into whole events, each checked for a call of a tool
  outside `tools` before it goes, and metered;
- `extproc.mcp.exchange`'s answers, wrapped by `McpAnswer`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from extproc.audit import FindingRecord
from extproc.document_guard import DocumentVerdict, KeyCollision, judge_document
from extproc.events import Action, ContinueHeaders, ContinueTrailers, Direction, StreamBody
from extproc.exchange_record import ExchangeRecord
from extproc.llm.base import (
    BadResponseBody,
    ErrorKind,
    Provider,
    StreamEvent,
    TextPart,
    Usage,
    parse_response_body,
)
from extproc.llm.response_facts import ResponseFacts
from extproc.llm.strings import StructureError
from extproc.llm_tools import TOOLS_SCANNER, forbidden_call
from extproc.scan_plan import ScanPlan
from extproc.sse import SseError, SseEvent, SseParser
from extproc.sse_guard import SseGuard, stream_error_events, tool_blocked_events, tool_finding
from extproc.usage_meter import UsageMeter
from mesh.mcp_policy import ToolRules
from mesh.verdicts import Verdict

if TYPE_CHECKING:
    from extproc.stream import Exchange

RESPONSE = Direction.RESPONSE
# Envoy's FDS documentation recommends response chunks of at most 64 KiB.
MAX_EMITTED_CHUNK = 64 * 1024
# The longest SSE event a tools-checked stream holds whole (as `SseGuard` does).
MAX_EVENT_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Refuse:
    """A processor's decision to end the exchange with a local reply (a 403, a 503).

    The exchange builds the reply, in the caller's error format (the provider's, or
    JSON-RPC for MCP), and records the verdict; the processor knows neither.
    """

    kind: ErrorKind
    message: str
    verdict: Verdict | None = None


Out = list[Action | Refuse]


class ResponseBody(Protocol):
    """One way of handling a response body; see the module docstring."""

    # A token stream whose released events a token budget counts (`ReleasedEvents`).
    budgeted: bool

    @property
    def done(self) -> bool:
        """The body has ended (Envoy's end of stream, or trailers) and been answered."""
        ...

    @property
    def ended(self) -> bool:
        """Weir ended the client's answer: what the upstream still sends is dropped."""
        ...

    @property
    def complete(self) -> bool:
        """The answer is decided and handed over: the record is final from here on."""
        ...

    def feed(self, chunk: bytes, end_of_stream: bool) -> Out: ...

    def trailers(self) -> Out: ...

    def terminate(self, reason: str) -> Out: ...

    def stop(self) -> None: ...

    def contribute(self, record: ExchangeRecord) -> None: ...


def blocked_reason(what: str, hit: FindingRecord) -> str:
    """Why a whole prompt or answer was refused: the rule, never the text."""
    return f"{what} blocked by policy: rule '{hit.rule}' ({hit.scanner}) matched in {hit.where}"


def tool_call_reason(tool: str) -> str:
    return (
        f"response blocked by policy: it calls tool '{tool}', "
        "which is not in the workload's tools"
    )


def stream_chunks(direction: Direction, body: bytes, end_of_stream: bool) -> list[StreamBody]:
    """Split a body we emit ourselves into chunks of the size Envoy recommends for FDS."""
    if len(body) <= MAX_EMITTED_CHUNK:
        return [StreamBody(direction, body, end_of_stream)]
    view = memoryview(body)
    last = len(body) - 1
    return [
        StreamBody(
            direction,
            bytes(view[offset : offset + MAX_EMITTED_CHUNK]),
            end_of_stream and offset + MAX_EMITTED_CHUNK > last,
        )
        for offset in range(0, len(body), MAX_EMITTED_CHUNK)
    ]


def _record_usage(record: ExchangeRecord, usage: Usage | None) -> None:
    if usage is not None:
        record.input_tokens = usage.input_tokens
        record.output_tokens = usage.output_tokens


def _record_facts(record: ExchangeRecord, facts: ResponseFacts) -> None:
    record.response_model = facts.model
    record.finish_reasons = list(facts.finish_reasons)


# --- nothing to scan ---------------------------------------------------------------


class PassThrough:
    """The body flows chunk by chunk, unchanged; an LLM answer is metered on the side."""

    budgeted = True

    def __init__(self, meter: UsageMeter | None = None, provider: Provider | None = None) -> None:
        self._meter = meter
        self._provider = provider
        self.done = False
        self.ended = False
        self._failure: str | None = None
        self._final: tuple[Usage | None, Usage | None] | None = None  # before/at the end
        self._stopped: Usage | None = None

    @property
    def complete(self) -> bool:
        return self.done or self.ended or (self._meter is not None and self._meter.saw_terminal)

    def feed(self, chunk: bytes, end_of_stream: bool) -> Out:
        meter = self._meter
        if meter is not None:
            meter.feed(chunk)
        if end_of_stream:
            self._end()
        return [StreamBody(RESPONSE, chunk, end_of_stream)]

    def trailers(self) -> Out:
        self._end()
        return [ContinueTrailers(RESPONSE)]

    def _end(self) -> None:
        self.done = True
        meter = self._meter
        if meter is not None:
            seen = meter.usage if meter.saw_terminal else None
            self._final = (seen, meter.finish())

    def terminate(self, reason: str) -> Out:
        meter = self._meter
        if meter is None or not meter.event_stream or self._provider is None or self.done:
            return []  # no in-band ending for this body: the caller fails the stream
        # The client may hold half an event: close it so the error event stands alone.
        prefix = b"" if meter.at_event_boundary else b"\n\n"
        self.ended = True
        self._meter = None
        self._failure = reason
        return [StreamBody(RESPONSE, prefix + stream_error_events(self._provider, reason), True)]

    def stop(self) -> None:
        meter = self._meter
        if meter is not None:
            self._stopped = meter.usage
            self._meter = None
        self.ended = True

    def contribute(self, record: ExchangeRecord) -> None:
        if self._failure is not None:
            record.verdict, record.reason = Verdict.ERROR, self._failure
            self._failure = None
        if self._stopped is not None:
            _record_usage(record, self._stopped)
            self._stopped = None
        meter = self._meter
        if meter is None:
            return
        if self._final is not None:
            seen, final = self._final
            _record_usage(record, seen)
            _record_usage(record, final)
            _record_facts(record, meter.facts)
            self._meter = None
        elif meter.saw_terminal:
            _record_usage(record, meter.usage)
            _record_facts(record, meter.facts)


# --- a token stream through the guard ------------------------------------------------


class GuardedStream:
    """An SSE token stream scanned in flight by `SseGuard`: only released bytes go out."""

    budgeted = True

    def __init__(self, guard: SseGuard) -> None:
        self._guard = guard
        self.done = False
        self.ended = False
        self._closed = False  # the guard's verdict is final
        self._contributed = False
        self._held_max = 0

    @property
    def complete(self) -> bool:
        return self._closed or self.done or self.ended

    def feed(self, chunk: bytes, end_of_stream: bool, *, final: bool = False) -> Out:
        guard = self._guard
        out = guard.feed(chunk) if chunk else b""
        self._held_max = max(self._held_max, guard.held_bytes)
        if guard.terminated and not end_of_stream:
            # The client already has the error event and terminator: end its response now
            # instead of when the upstream finishes. Envoy 1.40 accepts end_of_stream before
            # its own and stops reading the upstream, so no more tokens are paid for
            # (pinned by tests/e2e/test_stream_enforcement.py).
            self.ended = self._closed = True
            return [StreamBody(RESPONSE, out, True)]
        if end_of_stream or final:
            out += guard.finish()
            self.done = self._closed = True
        elif guard.saw_terminal:
            # Everything the answer had is judged and released with this chunk.
            self._closed = True
        if not out and not end_of_stream:
            return []  # everything is held: no message to Envoy for this chunk
        return [StreamBody(RESPONSE, out, end_of_stream)]

    def trailers(self) -> Out:
        return [*self.feed(b"", False, final=True), ContinueTrailers(RESPONSE)]

    def terminate(self, reason: str) -> Out:
        out = self._guard.terminate(reason)
        self.ended = self._closed = True
        return [StreamBody(RESPONSE, out, True)]

    def stop(self) -> None:
        self._closed = True

    def contribute(self, record: ExchangeRecord) -> None:
        record.held_bytes_max = max(record.held_bytes_max, self._held_max)
        if not self._closed or self._contributed:
            return
        self._contributed = True
        guard = self._guard
        record.findings.extend(guard.findings)
        _record_usage(record, guard.usage)
        _record_facts(record, guard.facts)
        hit = guard.blocked_by
        if hit is not None:
            if hit.scanner == TOOLS_SCANNER:
                record.findings.append(hit)
            if hit.scanner == TOOLS_SCANNER and not guard.terminated:
                # Observing only (audit), the client had every byte: nothing was blocked.
                record.verdict = Verdict.AUDIT
                record.reason = f"would be blocked: {tool_call_reason(hit.rule)}"
            else:
                record.verdict = Verdict.BLOCK
                record.reason = f"response blocked: rule '{hit.rule}' ({hit.scanner})"
        elif guard.failure is not None:
            if guard.terminated or self.ended:
                record.verdict, record.reason = Verdict.ERROR, guard.failure
            else:
                # Observing only (audit actions), the client received every byte
                # unchanged; only Weir stopped reading. As on the JSON path, the verdict
                # stands and the record says what went unscanned.
                record.reason = f"not scanned: {guard.failure}"


# --- a JSON answer judged whole ------------------------------------------------------


class JudgedDocument:
    """A non-streamed answer held whole (its headers withheld), then judged.

    With a response plan every string is scanned (`judge_document`); the upstream's
    error reply (non-2xx) too, a JSON body string by string, any other whole as text.
    With the workload's `tools`, a call of a forbidden tool is refused with a 403.
    """

    budgeted = False

    def __init__(
        self,
        provider: Provider,
        plan: ScanPlan | None,
        tools: ToolRules | None,
        *,
        error_reply: bool,
        max_body: int,
        enforcing: bool,
    ) -> None:
        assert plan is not None or tools is not None
        self._provider = provider
        self._plan = plan
        self._tools = tools
        self._error_reply = error_reply
        self._max_body = max_body
        self._enforcing = enforcing
        # Observing only, an unreadable answer goes out unchanged and the record says so.
        self._observe_only = plan.observe_only if plan is not None else not enforcing
        self._body = bytearray()
        self.done = False
        self.ended = False  # a whole document is answered or refused, never cut
        # What the record gets at the next contribution.
        self._findings: list[FindingRecord] = []
        self._usage: Usage | None = None
        self._facts: ResponseFacts | None = None
        self._settled: tuple[Verdict | None, str] | None = None

    @property
    def complete(self) -> bool:
        return self.done

    def feed(self, chunk: bytes, end_of_stream: bool) -> Out:
        if len(self._body) + len(chunk) > self._max_body:
            return [Refuse(
                ErrorKind.UNAVAILABLE,
                "the upstream response exceeds Weir's limit of "
                f"{self._max_body} bytes and cannot be judged",
            )]
        self._body += chunk
        return self._judge(end_of_stream=True) if end_of_stream else []

    def trailers(self) -> Out:
        # Trailers, not a flagged body chunk, told us the body is complete.
        actions = self._judge(end_of_stream=False)
        if not any(isinstance(a, Refuse) for a in actions):
            actions.append(ContinueTrailers(RESPONSE))
        return actions

    def terminate(self, reason: str) -> Out:
        return [] if self.done else [Refuse(ErrorKind.UNAVAILABLE, reason)]

    def stop(self) -> None:
        pass

    def contribute(self, record: ExchangeRecord) -> None:
        record.findings.extend(self._findings)
        self._findings = []
        _record_usage(record, self._usage)
        self._usage = None
        if self._facts is not None:
            _record_facts(record, self._facts)
            self._facts = None
        if self._settled is not None:
            verdict, reason = self._settled
            if verdict is not None:
                record.verdict = verdict
            record.reason = reason
            self._settled = None

    def _judge(self, *, end_of_stream: bool) -> Out:
        body = bytes(self._body)
        self._body = bytearray()
        self.done = True
        provider, plan = self._provider, self._plan
        try:
            if self._error_reply:
                assert plan is not None
                return self._judge_error_reply(body, plan, end_of_stream=end_of_stream)
            document = parse_response_body(body)
            self._usage = provider.usage(document)
            tools = self._tools
            called = None if tools is None else forbidden_call(document, tools)
            if called is not None:
                refused = self._forbidden_tool(called)
                if refused is not None:
                    return [refused]
            facts = ResponseFacts()
            facts.observe(document)
            self._facts = facts
            if plan is None:
                verdict = DocumentVerdict((), None, {})
                rewritten = body
            else:
                verdict = judge_document(
                    provider.response_texts(document), plan, "response", document=document
                )
                rewritten = verdict.apply(document) if verdict.changed else body
        except (BadResponseBody, StructureError, KeyCollision) as exc:
            if self._observe_only:
                self._settled = (None, f"not scanned: {exc}")
                return [ContinueHeaders(RESPONSE), *stream_chunks(RESPONSE, body, end_of_stream)]
            return [Refuse(ErrorKind.UNAVAILABLE, f"unreadable upstream response: {exc}")]
        return self._judged(verdict, rewritten, end_of_stream=end_of_stream)

    def _forbidden_tool(self, tool: str) -> Refuse | None:
        self._findings.append(tool_finding(tool))
        reason = tool_call_reason(tool)
        if self._enforcing:
            return Refuse(ErrorKind.PERMISSION_DENIED, reason, verdict=Verdict.BLOCK)
        self._settled = (Verdict.AUDIT, reason)  # a dry run: recorded, the answer goes on
        return None

    def _judge_error_reply(self, body: bytes, plan: ScanPlan, *, end_of_stream: bool) -> Out:
        """A non-2xx reply: every string of a JSON body, or the whole body as text."""
        try:
            document: object = parse_response_body(body)
        except BadResponseBody:
            document = None
        if document is not None:
            verdict = judge_document((), plan, "response", document=document)
            rewritten = verdict.apply(document) if verdict.changed else body
        else:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BadResponseBody("the upstream's error reply is not UTF-8 text") from exc
            part = TextPart(("body",), text, "error")
            verdict = judge_document((part,), plan, "response")
            changed = verdict.replacements.get(("body",))
            rewritten = changed.encode("utf-8") if isinstance(changed, str) else body
        return self._judged(verdict, rewritten, end_of_stream=end_of_stream)

    def _judged(self, verdict: DocumentVerdict, body: bytes, *, end_of_stream: bool) -> Out:
        self._findings.extend(verdict.findings)
        if verdict.blocked_by is not None:
            return [Refuse(
                ErrorKind.PERMISSION_DENIED,
                blocked_reason("response", verdict.blocked_by),
                verdict=Verdict.BLOCK,
            )]
        headers = ContinueHeaders(RESPONSE)
        if verdict.changed:
            headers = ContinueHeaders(RESPONSE, remove_headers=("content-length",))
        return [headers, *stream_chunks(RESPONSE, body, end_of_stream)]


# --- tool calls checked on a stream that has no response rules -------------------------


def _may_name_tool(data: str) -> bool:
    # Every shape names a tool under the key "name"; only a \u escape can spell that key
    # otherwise. An event with neither names no tool, and is not parsed here.
    return "name" in data or "\\u" in data


class ToolCheckedStream:
    """A token stream of a workload that restricts `tools` and has no response rules.

    The SSE events are framed (`SseParser`) and released whole, as their own bytes: a
    partial event waits for its end. Each event that may name a tool is read by the
    provider's adapter and checked with `forbidden_call` before it goes. A forbidden
    name ends the answer in band (the provider's error event and terminator), with the
    event that names it withheld, so no byte of the call's arguments is released. An
    event Weir cannot read ends it the same way, since it could hide a call. Usage is
    metered from the released bytes. In audit mode (`enforcing` false) nothing is
    withheld: a forbidden call is recorded and the stream goes on.
    """

    budgeted = True

    def __init__(
        self,
        provider: Provider,
        tools: ToolRules,
        *,
        enforcing: bool,
        max_body: int,
        max_event_bytes: int = MAX_EVENT_BYTES,
    ) -> None:
        self._provider = provider
        self._tools = tools
        self._enforcing = enforcing
        self._parser = SseParser(max_event_bytes=max_event_bytes)
        self._meter: UsageMeter | None = UsageMeter(
            provider, event_stream=True, max_body=max_body
        )
        self._first: SseEvent | None = None  # the first and last data events released,
        self._last: SseEvent | None = None  # for the ids and numbers of an error event
        self.done = False
        self.ended = False
        self._checking = True  # false once an audit-mode stream could not be read
        self._held_max = 0
        self._findings: list[FindingRecord] = []
        self._settled: tuple[Verdict | None, str] | None = None
        self._final: Usage | None = None
        self._finished = False

    @property
    def complete(self) -> bool:
        return (
            self.done or self.ended or (self._meter is not None and self._meter.saw_terminal)
        )

    @property
    def held_bytes(self) -> int:
        return self._parser.held_bytes

    def feed(self, chunk: bytes, end_of_stream: bool, *, final: bool = False) -> Out:
        ended = end_of_stream or final
        if not self._enforcing:
            # A dry run: every byte goes on at once; the events are read on the side.
            if self._checking:
                self._check(chunk, final=ended)
            out = chunk
        else:
            out = self._check(chunk, final=ended)
            if self.ended:
                return [StreamBody(RESPONSE, out, True)]
        if self._meter is not None:
            self._meter.feed(out)
        if ended:
            self.done = True
            if self._meter is not None:
                self._final = self._meter.finish()
                self._finished = True
        if not out and not end_of_stream:
            return []
        return [StreamBody(RESPONSE, out, end_of_stream)]

    def trailers(self) -> Out:
        actions = self.feed(b"", False, final=True)
        if not self.ended:
            actions.append(ContinueTrailers(RESPONSE))
        return actions

    def _check(self, chunk: bytes, *, final: bool) -> bytes:
        parser = self._parser
        try:
            events = parser.feed(chunk) if chunk else []
            if final:
                events += parser.finish()
        except SseError as exc:
            return self._unreadable(f"malformed event stream: {exc}")
        self._held_max = max(self._held_max, parser.held_bytes)
        out: list[bytes] = []
        for event in events:
            data = event.data
            if data is not None:
                if _may_name_tool(data):
                    try:
                        payload = self._provider.read_event(event).payload
                    except BadResponseBody as exc:
                        reason = f"unreadable stream event: {exc}"
                        return b"".join(out) + self._unreadable(reason)
                    tool = forbidden_call(payload, self._tools)
                    if tool is not None and self._forbidden(tool):
                        return b"".join(out) + self._block(tool)
                    if tool is not None and not self._enforcing:
                        self._checking = False  # one recorded call is enough for a dry run
                        return b""
                if self._first is None:
                    self._first = event
                self._last = event
            out.append(event.raw)
        return b"".join(out)

    def _forbidden(self, tool: str) -> bool:
        """Record a call of a forbidden tool; True when it must be blocked."""
        self._findings.append(tool_finding(tool))
        if self._enforcing:
            self._settled = (
                Verdict.BLOCK, f"response blocked: rule '{tool}' ({TOOLS_SCANNER})"
            )
            return True
        self._settled = (Verdict.AUDIT, f"would be blocked: {tool_call_reason(tool)}")
        return False

    def _views(self) -> tuple[StreamEvent | None, StreamEvent | None]:
        """The first and last released events, read only now that an ending needs them."""
        views: list[StreamEvent | None] = []
        for event in (self._first, self._last):
            try:
                views.append(None if event is None else self._provider.read_event(event))
            except BadResponseBody:
                views.append(None)
        return views[0], views[1]

    def _block(self, tool: str) -> bytes:
        self.ended = True
        first, last = self._views()
        return tool_blocked_events(self._provider, tool, first=first, last=last)

    def _unreadable(self, reason: str) -> bytes:
        if not self._enforcing:
            # A dry run: stop reading, and say what went unchecked.
            self._checking = False
            self._settled = (None, f"not checked for tool calls: {reason}")
            return b""
        self.ended = True
        self._settled = (Verdict.ERROR, reason)
        first, last = self._views()
        return stream_error_events(self._provider, reason, first=first, last=last)

    def terminate(self, reason: str) -> Out:
        if self.done or self.ended:
            return []
        self.ended = True
        self._settled = (Verdict.ERROR, reason)
        self._meter = None
        first, last = self._views()
        # Only whole events were released: the error event needs no blank line first.
        ending = stream_error_events(self._provider, reason, first=first, last=last)
        return [StreamBody(RESPONSE, ending, True)]

    def stop(self) -> None:
        self.ended = True

    def contribute(self, record: ExchangeRecord) -> None:
        record.held_bytes_max = max(record.held_bytes_max, self._held_max)
        if self._findings:
            record.findings.extend(self._findings)
            self._findings = []
        if self._settled is not None:
            verdict, reason = self._settled
            if verdict is not None:
                record.verdict = verdict
            record.reason = reason
            self._settled = None
        meter = self._meter
        if meter is None:
            return
        if self._finished:
            _record_usage(record, self._final)
            _record_facts(record, meter.facts)
            self._meter = None
        elif meter.saw_terminal or self.ended:
            _record_usage(record, meter.usage)
            _record_facts(record, meter.facts)


# --- MCP answers ---------------------------------------------------------------------


class McpAnswer:
    """An MCP answer (one JSON message or an SSE stream of them), judged by the MCP hooks.

    A thin wrapper: `extproc.mcp.exchange` keeps the logic (and writes the record and
    the exchange's response state itself), so the exchange handles every body the same
    way.
    """

    budgeted = False

    def __init__(self, exchange: Exchange, *, stream: bool) -> None:
        self._exchange = exchange
        self._stream = stream

    @property
    def done(self) -> bool:
        return self._exchange.response_done

    @property
    def ended(self) -> bool:
        return self._exchange.response_ended

    @property
    def complete(self) -> bool:
        return self.done or self.ended

    def feed(self, chunk: bytes, end_of_stream: bool) -> Out:
        return list(self._exchange._mcp_response_chunk(chunk, end_of_stream))

    def trailers(self) -> Out:
        actions: Out = list(self._exchange._mcp_response_chunk(b"", False, final=True))
        if not self._exchange.closed and not self.ended:
            actions.append(ContinueTrailers(RESPONSE))
        return actions

    def terminate(self, reason: str) -> Out:
        if self.done or self.ended:
            return []
        if self._stream:
            return list(self._exchange._mcp_terminate(reason))
        return [Refuse(ErrorKind.UNAVAILABLE, reason)]

    def stop(self) -> None:
        pass

    def contribute(self, record: ExchangeRecord) -> None:
        pass  # the MCP hooks write the record as they judge


# --- choosing the processor ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Selected:
    """The processor for a response body, and what answers the response headers now.

    ``body`` None: the headers are refused (`headers` holds the `Refuse`). ``reason``,
    when set, is the record's reason ("not scanned: ...").
    """

    body: ResponseBody | None
    headers: Out
    reason: str | None = None


def _identity(encoding: str | None) -> bool:
    return encoding in (None, "", "identity")


def select_response_body(
    provider: Provider | None,
    plan: ScanPlan | None,
    tools: ToolRules | None,
    *,
    status: int | None,
    content_type: str,
    encoding: str | None,
    enforcing: bool,
    max_body: int,
) -> Selected:
    """The processor for a (non-MCP) response with a body, chosen at its headers.

    - no plan and no `tools` (or no LLM call, or a non-2xx reply without rules): a
      pass-through, metered when it is a 2xx LLM answer;
    - an SSE stream: guarded (a plan), or tools-checked (`tools` only);
    - JSON (or, with rules, the upstream's error reply): held and judged whole;
    - compressed or any other type: unreadable, so refused (503) unless the rules only
      observe, in which case it flows and the record says it was not scanned.
    """
    answered = 200 <= (status or 0) < 300
    content_type = content_type.lower()
    identity = _identity(encoding)
    error_reply = False
    if plan is not None and provider is not None and not answered:
        # The upstream's error reply is scanned too: an error body may quote the
        # prompt, or be anything a hostile upstream likes.
        error_reply = True
    elif provider is None or (plan is None and (tools is None or not answered)):
        # Nothing to scan: it flows as it comes, and an LLM answer is still metered.
        meter = None
        if answered and provider is not None and identity:
            meter = UsageMeter(
                provider, event_stream="text/event-stream" in content_type, max_body=max_body
            )
        return Selected(PassThrough(meter, provider), [ContinueHeaders(RESPONSE)])

    # An LLM answer with response rules, or a 2xx one of a workload restricting tools.
    observe_only = plan.observe_only if plan is not None else not enforcing
    what = "scanned" if plan is not None else "checked for the workload's tools"
    if not identity:
        unreadable = f"the upstream response is compressed ({encoding}) and cannot be {what}"
    elif "text/event-stream" in content_type:
        headers: Out = [ContinueHeaders(RESPONSE, remove_headers=("content-length",))]
        if plan is not None:
            return Selected(GuardedStream(SseGuard(provider, plan, tools=tools)), headers)
        assert tools is not None
        stream = ToolCheckedStream(provider, tools, enforcing=enforcing, max_body=max_body)
        return Selected(stream, headers)
    elif "json" in content_type or error_reply:
        # Withheld until the body is judged, so a block can still be a 403. An error
        # reply of another type (text, HTML) is judged whole as text.
        document = JudgedDocument(
            provider, plan, tools,
            error_reply=error_reply, max_body=max_body, enforcing=enforcing,
        )
        return Selected(document, [])
    else:
        unreadable = f"the upstream response type {content_type!r} cannot be {what}"
    if observe_only:
        meter = None
        if plan is None and identity:
            meter = UsageMeter(provider, event_stream=False, max_body=max_body)
        return Selected(
            PassThrough(meter, provider), [ContinueHeaders(RESPONSE)], f"not scanned: {unreadable}"
        )
    return Selected(None, [Refuse(ErrorKind.UNAVAILABLE, unreadable)])
