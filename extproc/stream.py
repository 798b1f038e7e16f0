"""One HTTP exchange as a sans-I/O state machine, in FULL_DUPLEX_STREAMED mode.

Events from `extproc.events` go in (`Exchange.receive`), actions come out. The
gRPC servicer is a thin loop around this class; every edge case is a plain
unit test.

The request side (`extproc.request_side`, inherited) decides: the caller's
identity, the policy, and whether the request goes on; for an LLM call the
headers response is withheld until the body has been judged, so the upstream
never sees a denied request.

The response side hands the body to one processor (`extproc.response_body`),
chosen when the response headers arrive from the workload's response rules, its
`tools` and the reply: a metered pass-through, the guarded SSE stream, a JSON
reply judged whole (its headers withheld, so a `block` can still be a clean
403), a tools-checked stream for a workload with `tools` but no response rules,
or an MCP answer. The processors contribute to the record; the exchange routes
events to them and turns their refusals into local replies.

The servicer calls `handle` (and `handle_budget`, `handle_deadline`,
`handle_end`): the same actions plus `Publish`, once, when the record is final.
`end_of_stream` is sent exactly once, when Envoy has said the body ended.
When a body ends with trailers, the trailers response closes that direction
instead (Envoy's FDS contract).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field, replace
from enum import Enum, auto

from extproc.audit import FindingRecord
from extproc.budget_gate import (
    BudgetGate,
    ReleasedEvents,
    dump_document,
    estimate_input,
    request_usage,
)
from extproc.events import (
    Action,
    BodyEvent,
    ContinueHeaders,
    ContinueTrailers,
    Direction,
    Event,
    HeadersEvent,
    ProtocolError,
    Respond,
    StreamBody,
    TrailersEvent,
    header_value,
)
from extproc.exchange_record import ExchangeRecord, Publish
from extproc.llm import (
    ErrorKind,
    error_format_for,
)
from extproc.llm.base import (
    Usage,
    parse_json_object,
)
from extproc.mcp.pins import MemoryPinStore, PinStore
from extproc.request_side import RequestSide
from extproc.request_side import _Request as _Request  # the MCP hooks read it here
from extproc.response_body import (
    MAX_EMITTED_CHUNK as MAX_EMITTED_CHUNK,  # re-exported: the chunk size Envoy is sent
)
from extproc.response_body import (
    McpAnswer,
    PassThrough,
    Refuse,
    ResponseBody,
    blocked_reason,
    select_response_body,
    stream_chunks,
)
from extproc.scan_plan import PolicyPlans, ScanPlan, compile_plans
from extproc.shared_store import Charge
from extproc.sse import serialize
from mesh.jwt import KeyLookup, LoadedKeys
from mesh.mcp_policy import ToolRules
from mesh.policy import Policy, WorkloadRule
from mesh.verdicts import Verdict

DEFAULT_MAX_REQUEST_BODY = 8 * 1024 * 1024
# A non-streamed response is judged whole; past this size it cannot be, and an
# enforcing policy fails it closed.
DEFAULT_MAX_RESPONSE_BODY = 16 * 1024 * 1024

REQUEST, RESPONSE = Direction.REQUEST, Direction.RESPONSE
_LOADED_KEYS = LoadedKeys()
# A 401 names its scheme (RFC 9110); the realm says who refused.
CHALLENGE = ("www-authenticate", 'Bearer realm="weir"')


class _Response(Enum):
    EXPECT_HEADERS = auto()
    BODY = auto()  # the body goes through its processor (`extproc.response_body`)
    ENDED_BY_WEIR = auto()  # blocked or ended mid-stream: the client's response is over
    DONE = auto()
    # Set by the MCP hooks (`extproc.mcp.exchange`), which keep their own modes:
    STREAMING_BODY = auto()  # an MCP answer with nothing to judge: it flows
    MCP_JSON = auto()  # an MCP answer in one JSON message: judged whole, headers withheld
    MCP_STREAM = auto()  # an MCP answer as SSE: each message judged whole before release


@dataclass(frozen=True, slots=True)
class ExchangeConfig:
    max_request_body: int = DEFAULT_MAX_REQUEST_BODY
    max_response_body: int = DEFAULT_MAX_RESPONSE_BODY
    # MCP tool pins (extproc.mcp.pins), shared by every exchange of the process.
    pins: PinStore = field(default_factory=MemoryPinStore)


class Exchange(RequestSide):
    """The state of one ext_proc stream (one HTTP request and its response)."""

    def __init__(
        self,
        policy: Policy,
        config: ExchangeConfig | None = None,
        keys: KeyLookup | None = None,
        plans: PolicyPlans | None = None,
    ) -> None:
        # The policy is captured once: a reload mid-exchange must not change the
        # rules halfway through one request. The server passes the plans its
        # PolicyStore compiled at load; without them they are compiled here, once.
        self._policy = policy
        # Token signing keys, fetched by the servicer before the headers arrive here;
        # without its shared cache only the keys read from JWKS files are known.
        self._keys: KeyLookup = keys if keys is not None else _LOADED_KEYS
        self._strip: tuple[str, ...] = ()
        if plans is None or plans.digest != policy.digest:
            plans = compile_plans(policy)
        self._plans = plans
        self._config = config or ExchangeConfig()
        self._init_request()
        self._response = _Response.EXPECT_HEADERS
        self._closed = False
        self._response_plan: ScanPlan | None = None
        self._body_processor: ResponseBody | None = None  # chosen at the response headers
        # A budgeted workload's exchange: a charge the servicer must carry to the shared
        # store (`budget_ask`), and the actions that wait for its answer (`answer_budget`).
        self._budget: BudgetGate | None = None
        self._released: ReleasedEvents | None = None
        self._usage_injected = False  # Weir asked for the usage chunk, not the client
        self._budget_held: list[Action] = []
        self._budget_settled = False
        self.budget_ask: Charge | None = None
        self._published = False  # `Publish` was returned
        self._publish_at_end = False  # the drain deadline ended it: publish with the failure
        self._init_mcp()
        self.record = ExchangeRecord(policy_digest=policy.digest)

    @property
    def closed(self) -> bool:
        """True once a local reply ended the exchange; Envoy sends nothing more after it."""
        return self._closed

    @property
    def complete(self) -> bool:
        """True once the client's response is decided and fully handed to Envoy.

        The record is final from here on, so the server can publish it before the last
        bytes reach the client rather than whenever Envoy gets round to closing the
        gRPC stream.
        """
        if self._closed or self._response in (_Response.DONE, _Response.ENDED_BY_WEIR):
            return True
        # The provider's own end-of-stream event has gone out: SDKs stop reading there and
        # may hang up before Envoy's end of stream ever reaches Weir.
        body = self._body_processor
        return body is not None and body.complete

    # --- what the servicer calls: Envoy's actions, and the record's publication ---------

    def handle(self, event: Event) -> list[Action | Publish]:
        """`receive`, plus `Publish` (first, once) when the record has become final."""
        return self._with_publication(self.receive(event))

    def handle_budget(self, used: int | None, applied: bool = False) -> list[Action | Publish]:
        """`answer_budget`, plus `Publish` when the record has become final."""
        return self._with_publication(self.answer_budget(used, applied))

    def handle_pins(self, loaded: bool) -> list[Action | Publish]:
        """`answer_pins`, plus `Publish` when the record has become final."""
        return self._with_publication(self.answer_pins(loaded))

    def handle_deadline(self, reason: str) -> list[Action]:
        """`terminate` at the drain deadline; the record is published by `handle_end`."""
        self._publish_at_end = True
        return self.terminate(reason)

    def handle_end(self, error: str | None) -> list[Publish]:
        """The ext_proc stream is over (``error``: why it failed, or None): the record's
        publication, unless it went already.

        A failed exchange is an error whatever was decided before it failed: a crash
        mid-answer must never stay logged as `allow`. Envoy cancelling a stream whose
        verdict is known is only its way of hanging up.
        """
        if self._published:
            return []
        self._published = True
        record = self.record
        if error is not None and (error != "cancelled" or record.verdict == Verdict.PENDING):
            record.verdict = Verdict.ERROR
            record.reason = f"ext_proc stream ended: {error}"
        return [Publish(record)]

    def _with_publication(self, actions: list[Action]) -> list[Action | Publish]:
        # Published before the actions go out: a client that reads the metrics right after
        # its stream ends must see this call. Never while a budget or pins answer is awaited:
        # the record may still change with it.
        if (
            self._published
            or self._publish_at_end
            or self.budget_ask is not None
            or self.pins_ask is not None
            or not self.complete
        ):
            return list(actions)
        self._published = True
        return [Publish(self.record), *actions]

    def receive(self, event: Event) -> list[Action]:
        if self._closed:
            raise ProtocolError(f"{type(event).__name__} after the exchange was answered")
        if event.direction is REQUEST:
            if isinstance(event, HeadersEvent):
                return self._request_headers_event(event)
            if isinstance(event, BodyEvent):
                return self._request_body_event(event)
            return self._request_trailers_event(event)
        if isinstance(event, HeadersEvent):
            actions = self._response_headers_event(event)
            if self._budget is not None and self._budget.reserved and not self._closed:
                actions = self._start_released_stream(event, actions)
            return actions
        if isinstance(event, BodyEvent):
            actions = self._response_body_event(event)
        else:
            actions = self._response_trailers_event(event)
        return actions if self._released is None else self._meter_released(actions)

    def terminate(self, reason: str) -> list[Action]:
        """End the exchange now, in the provider's own terms (Weir's drain deadline passed).

        A request still being judged, or a JSON response still withheld, gets a
        503 local reply; a token stream, guarded or passed through unscanned, gets
        the provider's in-band error event and end of stream, and what the upstream
        still sends is swallowed. [] when no such ending exists (waiting for the
        upstream's headers, a compressed or non-SSE pass-through body): the caller
        then fails the ext_proc stream, and Envoy fails the exchange closed (a 500,
        or a reset mid-response).
        """
        if self._closed:
            return []
        if self._request in (
            _Request.BUFFERING_BODY, _Request.SNIFFING_BODY, _Request.MCP_BODY
        ):
            return [self._refuse(ErrorKind.UNAVAILABLE, reason)]
        body = self._body_processor
        if body is None or self._response in (_Response.DONE, _Response.ENDED_BY_WEIR):
            return []
        return self._ran(body, body.terminate(reason))

    # --- response ------------------------------------------------------------
    #
    # The body is handled by one processor (`extproc.response_body`), chosen here when
    # the headers arrive; the exchange only routes the events to it, keeps its record
    # current and turns its refusals into local replies.

    def _response_headers_event(self, event: HeadersEvent) -> list[Action]:
        if self._response is not _Response.EXPECT_HEADERS:
            raise ProtocolError("response headers received twice")
        status = header_value(event.headers, ":status")
        if status is not None and status.isdigit():
            self.record.status = int(status)
        if event.end_of_stream:
            self._response = _Response.DONE
            return [ContinueHeaders(RESPONSE)]
        if self._mcp is not None:
            actions = self._mcp_response_headers(event)
            if self._response is _Response.STREAMING_BODY:
                self._body_processor = PassThrough()
            elif self._response in (_Response.MCP_JSON, _Response.MCP_STREAM):
                stream = self._response is _Response.MCP_STREAM
                self._body_processor = McpAnswer(self, stream=stream)
            return actions
        selected = select_response_body(
            self._provider,
            self._response_plan,
            self._tool_rules(),
            status=self.record.status,
            content_type=header_value(event.headers, "content-type") or "",
            encoding=header_value(event.headers, "content-encoding"),
            enforcing=self._policy.enforcing,
            max_body=self._config.max_response_body,
        )
        if selected.reason is not None:
            self.record.reason = selected.reason
        self._body_processor = selected.body
        if selected.body is not None:
            self._response = _Response.BODY
        return self._decided(selected.headers)

    def _tool_rules(self) -> ToolRules | None:
        """The workload's `tools`, when it restricts them (the answer's tool calls obey it)."""
        decision = self._header_decision
        workload = decision.workload if decision is not None else None
        if workload is None or workload.tool_rules.tools is None:
            return None
        return workload.tool_rules

    @property
    def response_done(self) -> bool:
        return self._response is _Response.DONE

    @property
    def response_ended(self) -> bool:
        """Weir ended the client's answer (a block, a drain, a spent budget)."""
        return self._response is _Response.ENDED_BY_WEIR

    def _response_body_event(self, event: BodyEvent) -> list[Action]:
        if self._response is _Response.DONE and event.end_of_stream and not event.chunk:
            # Envoy issue 46237: a duplicate, empty end-of-stream chunk after bodies of
            # about 1 MB in FDS. The stream already ended; answering again would not.
            return []
        self.record.response_bytes += len(event.chunk)
        if self._response is _Response.ENDED_BY_WEIR:
            return []  # what the upstream still sends after a block goes nowhere
        body = self._body_processor
        if body is None or self._response in (_Response.EXPECT_HEADERS, _Response.DONE):
            raise ProtocolError(f"response body in state {self._response.name}")
        return self._ran(body, body.feed(event.chunk, event.end_of_stream))

    def _response_trailers_event(self, event: TrailersEvent) -> list[Action]:
        if self._response is _Response.ENDED_BY_WEIR:
            return []
        body = self._body_processor
        if body is None or self._response in (_Response.EXPECT_HEADERS, _Response.DONE):
            raise ProtocolError(f"response trailers in state {self._response.name}")
        return self._ran(body, body.trailers())

    def _ran(self, body: ResponseBody, out: list[Action | Refuse]) -> list[Action]:
        """After a processor step: its contribution to the record, its state, its refusals."""
        body.contribute(self.record)
        if body.ended:
            self._response = _Response.ENDED_BY_WEIR
        elif body.done:
            self._response = _Response.DONE
        return self._decided(out)

    def _decided(self, out: list[Action | Refuse]) -> list[Action]:
        actions: list[Action] = []
        for item in out:
            if isinstance(item, Refuse):
                return [self._refuse(item.kind, item.message, verdict=item.verdict)]
            actions.append(item)
        return actions

    # --- token budgets (`extproc.budget_gate`) ------------------------------------

    def _reserve_budget(
        self,
        workload: WorkloadRule,
        document: dict[str, object],
        body: bytes,
        headers: ContinueHeaders,
        end_of_stream: bool,
    ) -> list[Action]:
        """Hold the request until the store has reserved its input tokens."""
        assert workload.budget is not None and self._provider is not None
        gate = BudgetGate(
            workload.budget,
            workload=workload.name,
            user=self.record.user,
            on_unavailable=self._policy.budget_store.on_unavailable,
            charge_id=uuid.uuid4().hex,
            now=time.time(),
        )
        self._budget = gate
        if request_usage(self._provider, dict(document)):
            # Exact metering needs the usage chunk; the client's view stays as it asked.
            rewritten = parse_json_object(body)
            request_usage(self._provider, rewritten)
            body = dump_document(rewritten)
            self._usage_injected = True
            headers = replace(headers, remove_headers=(*headers.remove_headers, "content-length"))
        self._budget_held = [headers, *stream_chunks(REQUEST, body, end_of_stream)]
        self.budget_ask = gate.reservation(estimate_input(self._provider.request_texts(document)))
        return []

    def answer_budget(self, used: int | None, applied: bool = False) -> list[Action]:
        """The store's answer to `budget_ask` (``used`` None: it did not answer in time).

        Returns the actions that waited for it: the request or the released chunk, a 429,
        a 503 (store down, `onUnavailable: closed`), or the answer ended in band.
        """
        ask, gate = self.budget_ask, self._budget
        if ask is None or gate is None:
            raise ProtocolError("a budget answer with no budget question")
        self.budget_ask = None
        held, self._budget_held = self._budget_held, []
        verdict = gate.judge(used, applied, admit=ask.admit)
        budget = gate.budget
        what = f"the token budget of {budget.tokens} per {budget.window}"
        if ask.admit:
            if verdict.unavailable:
                self.record.budget = "unavailable"
                if gate.fails_closed and self._refuse_or_audit(
                    "the token budget store is unavailable (budgetStore.onUnavailable: closed)"
                ):
                    return [self._refuse(
                        ErrorKind.UNAVAILABLE,
                        "the token budget store is unavailable "
                        "(budgetStore.onUnavailable: closed); retry shortly",
                    )]
                gate.reserved = True
                return held
            if verdict.refused:
                self.record.budget = "refused"
                reason = f"{what} is spent; it resets in {gate.retry_after}s"
                if self._refuse_or_audit(reason):
                    return [self._refuse_budget(reason, gate.retry_after)]
            else:
                self.record.budget = "reserved"
            gate.reserved = True
            return held
        if verdict.unavailable and self.record.budget == "reserved":
            self.record.budget = "unavailable"
        ended = any(isinstance(a, StreamBody) and a.end_of_stream for a in held)
        if not verdict.refused or ended or self._response is _Response.ENDED_BY_WEIR:
            return held
        reason = f"{what} was spent during this answer"
        if not self._refuse_or_audit(reason):
            return held
        return self._end_for_budget(held, reason)

    def _refuse_budget(self, reason: str, retry_after: int) -> Respond:
        respond = self._refuse(ErrorKind.RATE_LIMITED, reason, verdict=Verdict.DENY)
        extra = [("retry-after", str(retry_after))]
        if retry_after > 60:
            # The SDKs would retry within seconds; the window resets much later.
            extra.append(("x-should-retry", "false"))
        return replace(respond, headers=(*respond.headers, *extra))

    def _start_released_stream(self, event: HeadersEvent, actions: list[Action]) -> list[Action]:
        """A budgeted 2xx token stream: its events are counted (and maybe cut) as released."""
        content_type = (header_value(event.headers, "content-type") or "").lower()
        answered = 200 <= (self.record.status or 0) < 300
        if not answered or "text/event-stream" not in content_type or self._provider is None:
            return actions
        body = self._body_processor
        if body is None or not body.budgeted or self._response is not _Response.BODY:
            return actions
        self._released = ReleasedEvents(self._provider, strip_usage_chunk=self._usage_injected)
        return [
            replace(a, remove_headers=(*a.remove_headers, "content-length"))
            if isinstance(a, ContinueHeaders) and a.direction is RESPONSE
            else a
            for a in actions
        ]

    def _meter_released(self, actions: list[Action]) -> list[Action]:
        released, gate = self._released, self._budget
        assert released is not None and gate is not None
        out: list[Action] = []
        tokens = 0
        for action in actions:
            if isinstance(action, StreamBody) and action.direction is RESPONSE:
                data, n = released.feed(action.chunk, final=action.end_of_stream)
                tokens += n
                if data or action.end_of_stream:
                    out.append(StreamBody(RESPONSE, data, action.end_of_stream))
            elif isinstance(action, ContinueTrailers) and action.direction is RESPONSE:
                data, n = released.feed(b"", final=True)
                tokens += n
                if data:
                    out.append(StreamBody(RESPONSE, data, False))
                out.append(action)
            else:
                out.append(action)
        charge = gate.released(tokens)
        if charge is None:
            return out
        self._budget_held = out
        self.budget_ask = charge
        return []

    def _end_for_budget(self, held: list[Action], reason: str) -> list[Action]:
        """End a running answer in band: what was released, then the provider's error."""
        assert self._provider is not None
        body = self._body_processor
        if body is not None:
            body.stop()
            body.contribute(self.record)
        self._response = _Response.ENDED_BY_WEIR
        self.record.budget = "ended"
        self._settle(Verdict.BLOCK, reason)
        kept = [a for a in held if not (isinstance(a, StreamBody) and a.direction is RESPONSE)]
        released = b"".join(
            a.chunk for a in held if isinstance(a, StreamBody) and a.direction is RESPONSE
        )
        events = self._provider.error_events(
            f"weir: {reason}", "weir_budget_exhausted", kind=ErrorKind.RATE_LIMITED
        )
        ending = b"".join(serialize(e) for e in events)
        return [*kept, StreamBody(RESPONSE, released + ending, True)]

    def budget_settlement(self) -> Charge | None:
        """The exchange's final charge (once): the provider's usage, else the estimate."""
        gate = self._budget
        if gate is None or self._budget_settled:
            return None
        self._budget_settled = True
        record = self.record
        usage = None
        if record.input_tokens is not None or record.output_tokens is not None:
            usage = Usage(record.input_tokens, record.output_tokens)
        spent = self._response is _Response.ENDED_BY_WEIR or (
            record.status is not None and 200 <= record.status < 300
        )
        return gate.settlement(usage, spent=spent)

    # --- verdicts --------------------------------------------------------------

    def _refuse_or_audit(self, reason: str) -> bool:
        """True when the refusal must be enforced; in audit mode it is only recorded."""
        if self._policy.enforcing:
            return True
        self._settle(Verdict.AUDIT, reason)
        return False

    def _settle(self, verdict: Verdict, reason: str) -> None:
        self.record.verdict = verdict
        self.record.reason = reason

    def _refuse_blocked(self, what: str, hit: FindingRecord, *, verdict: Verdict) -> Respond:
        """The 403 for a whole prompt or answer a `block` rule matched: the rule, never the text."""
        return self._refuse(ErrorKind.PERMISSION_DENIED, blocked_reason(what, hit), verdict=verdict)

    def _refuse(self, kind: ErrorKind, message: str, verdict: Verdict | None = None) -> Respond:
        path = header_value(self._request_headers, ":path") or ""
        error_format = self._provider or self._error_format or error_format_for(path)
        self._closed = True
        self._request = _Request.DONE
        if verdict is None:
            verdict = Verdict.DENY if kind is ErrorKind.PERMISSION_DENIED else Verdict.ERROR
        self._settle(verdict, message)
        self.record.status = kind.status
        return Respond(
            status=kind.status,
            # An MCP client reads a JSON-RPC error; an LLM SDK its provider's shape.
            body=self._mcp_error_body(kind, f"weir: {message}")
            if self._mcp is not None
            else error_format.error_body(kind, f"weir: {message}"),
            headers=(
                ("content-type", "application/json"),
                ("x-weir-verdict", self.record.verdict),
                *((CHALLENGE,) if kind is ErrorKind.UNAUTHENTICATED else ()),
            ),
            details=f"weir_{kind.name.lower()}",
        )


# The MCP hooks (`extproc.mcp.exchange`) emit their bodies with this name.
_stream_chunks = stream_chunks
