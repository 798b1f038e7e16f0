"""One HTTP exchange as a sans-I/O state machine, in FULL_DUPLEX_STREAMED mode.

Events from `extproc.events` go in (`Exchange.receive`), actions come out. The
gRPC servicer is a thin loop around this class; every edge case is a plain
unit test.

The request side decides. On request headers the caller's identity is
resolved and the policy consulted; an unknown workload is refused at once.
For an LLM call the headers response itself is *withheld* until the body has
been read and judged: in FDS Envoy forwards the request headers upstream as
soon as we answer them, so answering early would let a request whose model is
refused reach the upstream (as headers, then a reset). Holding them keeps the
promise that the upstream never sees a denied request.

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

from extproc.audit import FindingRecord, subject_hash
from extproc.body_shape import (
    MODEL_KEY,
    LlmShape,
    TopLevelKeys,
    json_object_start,
    plain_json_start,
    shape_of,
    sniff,
    unsniffable,
)
from extproc.budget_gate import (
    BudgetGate,
    ReleasedEvents,
    dump_document,
    estimate_input,
    request_usage,
)
from extproc.document_guard import KeyCollision, judge_document
from extproc.events import (
    Action,
    BodyEvent,
    ContinueHeaders,
    ContinueTrailers,
    Direction,
    Event,
    Headers,
    HeadersEvent,
    Respond,
    StreamBody,
    TrailersEvent,
    header_value,
)
from extproc.exchange_record import ExchangeRecord, Publish
from extproc.llm import (
    EMPTY_BODY_REASON,
    BadRequestBody,
    ErrorKind,
    Provider,
    error_format_for,
    provider_for,
    provider_named,
)
from extproc.llm.anthropic_messages import AnthropicMessages
from extproc.llm.base import (
    Usage,
    parse_json_object,
    read_model_and_stream,
)
from extproc.llm_tools import forbidden_tool
from extproc.mcp.exchange import McpHooks
from extproc.mcp.pins import MemoryPinStore, PinStore
from extproc.request_path import normalise_path
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
from mesh.ai_hosts import authority_host
from mesh.credentials import (
    Credentials,
    credential_refusal,
    read_credentials,
    svid_problem,
    token_headers_to_strip,
)
from mesh.destinations import destination_refusal
from mesh.identity import (
    JWT_SVID,
    Identity,
    IdentityInputs,
    resolve_identity,
    unauthenticated_hint,
)
from mesh.jwt import KeyLookup, LoadedKeys, VerifiedToken
from mesh.mcp_policy import ToolRules
from mesh.policy import ALLOW, Decision, Policy, WorkloadRule
from mesh.verdicts import Verdict

DEFAULT_MAX_REQUEST_BODY = 8 * 1024 * 1024
# A non-streamed response is judged whole; past this size it cannot be, and an
# enforcing policy fails it closed.
DEFAULT_MAX_RESPONSE_BODY = 16 * 1024 * 1024

REQUEST, RESPONSE = Direction.REQUEST, Direction.RESPONSE
_LOADED_KEYS = LoadedKeys()
# A 401 names its scheme (RFC 9110); the realm says who refused.
CHALLENGE = ("www-authenticate", 'Bearer realm="weir"')
# A refusal of a request that carries an anthropic-version header speaks Anthropic.
_ANTHROPIC_ERRORS: Provider = AnthropicMessages()


class ProtocolError(Exception):
    """Envoy sent something the ext_proc protocol does not allow here.

    The servicer ends the gRPC stream with an error, and Envoy, configured with
    `failure_mode_allow: false`, fails the HTTP exchange closed.
    """


class _Request(Enum):
    EXPECT_HEADERS = auto()
    BUFFERING_BODY = auto()  # an LLM call: body accumulated, headers withheld
    SNIFFING_BODY = auto()  # path unrecognised: is the body an LLM call? headers withheld
    OVERSIZE_BODY = auto()  # a JSON body past the sniff limit: flows, judged as it closes
    PASSTHROUGH_BODY = auto()  # not an LLM call, identity allowed: chunks flow
    MCP_BODY = auto()  # an MCP message (extproc.mcp): held whole, judged, headers withheld
    DONE = auto()


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


class Exchange(McpHooks):
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
        self._request = _Request.EXPECT_HEADERS
        self._response = _Response.EXPECT_HEADERS
        self._closed = False
        self._request_headers: Headers = ()
        self._body = bytearray()
        self._provider: Provider | None = None
        self._identity: Identity | None = None
        self._header_decision: Decision | None = None
        self._error_format: Provider | None = None
        self._json_start: bool | None = None  # may the sniffed body be a JSON object?
        self._top_keys: TopLevelKeys | None = None  # an oversize body's top-level keys
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
        # its stream ends must see this call. Never while a budget answer is awaited: the
        # record may still change with it.
        if (
            self._published
            or self._publish_at_end
            or self.budget_ask is not None
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

    # --- request -------------------------------------------------------------

    def _request_headers_event(self, event: HeadersEvent) -> list[Action]:
        if self._request is not _Request.EXPECT_HEADERS:
            raise ProtocolError("request headers received twice")
        self._request_headers = event.headers
        method = header_value(event.headers, ":method") or ""
        path = header_value(event.headers, ":path") or ""
        authority = (
            header_value(event.headers, ":authority") or header_value(event.headers, "host") or ""
        )
        record = self.record
        record.method, record.path = method, path
        record.authority = authority_host(authority)
        record.api_path = normalise_path(path).canonical
        record.ai_host = self._policy.ai_hosts.is_ai_host(authority)
        if header_value(event.headers, "anthropic-version") is not None:
            self._error_format = _ANTHROPIC_ERRORS

        credentials = read_credentials(self._policy, event.headers, self._keys)
        identity = resolve_identity(
            _identity_inputs(event, credentials),
            sources=self._policy.identity_sources,
            trust_domain=self._policy.trust_domain,
            trusted_proxies=self._policy.xfcc_trusted_proxies,
        )
        self._identity = identity
        record.principal = identity.principal
        record.identity_source = identity.source
        record.identity_detail = identity.detail

        decision = self._policy.decide(identity.principal, None)
        self._header_decision = decision
        record.workload = decision.workload.name if decision.workload else None
        record.rule = decision.rule
        self._provider = provider_for(method, path, ai_host=record.ai_host)
        record.provider = self._provider.name if self._provider else None
        record.recognised_by = "path" if self._provider else None
        if self._provider is None and self._mcp_path(method, path):
            self._start_mcp(decision.workload, "path")

        refused = self._caller_refusal(identity, credentials, decision.workload)
        if refused is not None:
            return [refused]
        if not decision.allowed and self._refuse_or_audit(decision.reason):
            hint = unauthenticated_hint(identity, self._policy.identity_sources)
            return [self._refuse(ErrorKind.PERMISSION_DENIED, decision.reason + hint)]
        self._strip = token_headers_to_strip(self._policy)

        if self._mcp is not None:
            return self._mcp_request_headers(event)
        if self._provider is None:
            return self._unrecognised_path(event)
        refused = self.govern_llm_destination(decision.workload, self._provider)
        if refused is not None:
            return [refused]

        if event.end_of_stream:
            return [self._refuse(ErrorKind.INVALID_REQUEST, EMPTY_BODY_REASON)]
        encoding = header_value(event.headers, "content-encoding")
        if encoding not in (None, "", "identity"):
            # Scanning compressed bytes as text would see nothing: refuse, never guess.
            return [
                self._refuse(
                    ErrorKind.INVALID_REQUEST,
                    f"request bodies with content-encoding {encoding!r} are not accepted; "
                    "send the JSON uncompressed",
                )
            ]
        self._request = _Request.BUFFERING_BODY
        return []

    def _request_body_event(self, event: BodyEvent) -> list[Action]:
        self.record.request_bytes += len(event.chunk)
        if self._request is _Request.PASSTHROUGH_BODY:
            if event.end_of_stream:
                self._request = _Request.DONE
            return [StreamBody(REQUEST, event.chunk, event.end_of_stream)]
        if self._request is _Request.SNIFFING_BODY:
            return self._sniffing_chunk(event.chunk, event.end_of_stream)
        if self._request is _Request.OVERSIZE_BODY:
            return self._oversize_chunk(event.chunk, event.end_of_stream)
        if self._request is _Request.MCP_BODY:
            return self._mcp_request_chunk(event.chunk, event.end_of_stream)
        if self._request is not _Request.BUFFERING_BODY:
            raise ProtocolError(f"request body in state {self._request.name}")

        if len(self._body) + len(event.chunk) > self._config.max_request_body:
            return [
                self._refuse(
                    ErrorKind.TOO_LARGE,
                    f"request body exceeds Weir's limit of {self._config.max_request_body} bytes",
                )
            ]
        self._body += event.chunk
        if not event.end_of_stream:
            return []
        return self._judge_request_body(end_of_stream=True)

    def _request_trailers_event(self, event: TrailersEvent) -> list[Action]:
        if self._request is _Request.PASSTHROUGH_BODY:
            self._request = _Request.DONE
            return [ContinueTrailers(REQUEST)]
        if self._request in (_Request.SNIFFING_BODY, _Request.OVERSIZE_BODY):
            # Trailers end the body: decide on what came, then let the trailers follow.
            if self._request is _Request.SNIFFING_BODY:
                actions = self._sniffing_chunk(b"", end_of_stream=False, final=True)
            else:
                actions = self._oversize_chunk(b"", end_of_stream=False, final=True)
            if not self._closed:
                self._request = _Request.DONE
                actions.append(ContinueTrailers(REQUEST))
            return actions
        if self._request is _Request.MCP_BODY:
            actions = self._mcp_request_chunk(b"", end_of_stream=False, final=True)
            if not self._closed:
                actions.append(ContinueTrailers(REQUEST))
            return actions
        if self._request is _Request.BUFFERING_BODY:
            # Trailers, not a flagged body chunk, told us the body is complete.
            actions = self._judge_request_body(end_of_stream=False)
            if not self._closed:
                actions.append(ContinueTrailers(REQUEST))
            return actions
        raise ProtocolError(f"request trailers in state {self._request.name}")

    # --- requests Weir does not recognise by their path ---------------------------
    #
    # In sidecar-outbound mode every outbound call of the workload comes here. The
    # body is sniffed: bytes that cannot start a JSON object are released with the
    # headers at the first chunk; a JSON object is held (headers withheld, so the
    # upstream sees nothing yet) until it is whole, then parsed once. An LLM call is
    # judged and scanned as one (extproc.body_shape says which API it is shaped as);
    # anything else flows on, except that a known AI host's unrecognised API is
    # refused with a 404 unless the workload says `unknownApis: allow`.

    def _unrecognised_path(self, event: HeadersEvent) -> list[Action]:
        if event.end_of_stream:
            if self.record.ai_host:
                return self._unknown_api(None, end_of_stream=True)
            return self._release(None, end_of_stream=True, reason=self._identity_reason())
        encoding = header_value(event.headers, "content-encoding")
        unsniffed = unsniffable(self.record.method, event.headers)
        if unsniffed is None and encoding not in (None, "", "identity"):
            unsniffed = f"a {encoding}-encoded body"
        if unsniffed is not None:
            # Not sniffed. To an AI host it is an unknown API call; elsewhere it is
            # ordinary traffic (a gzip upload, a WebSocket, a gRPC stream) and flows.
            if self.record.ai_host:
                self._request = _Request.SNIFFING_BODY  # withheld until the 404 or allow
                return self._unknown_api(None, end_of_stream=False)
            self._request = _Request.PASSTHROUGH_BODY
            self._settle(Verdict.ALLOW, f"{self._identity_reason()}; {unsniffed}, not sniffed")
            return [ContinueHeaders(REQUEST, remove_headers=self._strip)]
        self._request = _Request.SNIFFING_BODY
        return []  # withheld until the body says whether it is an LLM call

    def _identity_reason(self) -> str:
        decision = self._header_decision
        return decision.reason if decision is not None else ""

    def _sniffing_chunk(
        self, chunk: bytes, end_of_stream: bool, *, final: bool = False
    ) -> list[Action]:
        ended = end_of_stream or final
        if len(self._body) + len(chunk) > self._config.max_request_body:
            return self._past_sniff_limit(chunk, end_of_stream)
        self._body += chunk
        start = self._json_start
        if start is None:
            # Undecided means everything before this chunk may precede a `{`: only the
            # chunk can decide.
            start = self._json_start = json_object_start(chunk)
        if start is None and not ended:
            return []  # only whitespace or byte-order marks so far
        if not start:
            return self._not_an_llm_call(end_of_stream)
        if not ended:
            return []
        body = bytes(self._body)
        # An MCP message (JSON-RPC 2.0 with an MCP method) on any path is judged as one.
        if self._mcp_sniffed(body):
            return self._mcp_request_chunk(b"", end_of_stream, final=not end_of_stream)
        shape = sniff(body, self._request_headers)
        if shape is None:
            return self._not_an_llm_call(end_of_stream, body)
        return self._judge_sniffed(shape, end_of_stream)

    def _judge_sniffed(self, shape: LlmShape, end_of_stream: bool) -> list[Action]:
        record = self.record
        record.recognised_by = "body"
        provider = provider_named(shape.api)
        if provider is None:  # UNREADABLE_API: an LLM call whose API Weir cannot read
            return self._unreadable_llm_call(end_of_stream)
        self._provider = provider
        record.provider = provider.name
        decision = self._header_decision
        refused = self.govern_llm_destination(
            decision.workload if decision is not None else None, provider
        )
        if refused is not None:
            return [refused]
        return self._judge_request_body(end_of_stream=end_of_stream)

    def _unreadable_llm_call(self, end_of_stream: bool) -> list[Action]:
        """An LLM call (model and prompt) in an API no adapter reads: the model is
        judged, then it is an unknown API, which only `unknownApis: allow` lets through."""
        assert self._identity is not None
        try:
            model = parse_json_object(bytes(self._body)).get(MODEL_KEY)
        except BadRequestBody as exc:
            return [self._refuse(ErrorKind.INVALID_REQUEST, str(exc))]
        if isinstance(model, str) and model:
            self.record.model = model
            decision = self._policy.decide(self._identity.principal, model)
            self.record.rule = decision.rule
            if not decision.allowed and self._refuse_or_audit(decision.reason):
                return [self._refuse(ErrorKind.PERMISSION_DENIED, decision.reason)]
        body = bytes(self._body)
        self._body = bytearray()
        what = "an LLM call in an API Weir does not read"
        return self._unknown_api(body, end_of_stream, what=what)

    def _not_an_llm_call(self, end_of_stream: bool, body: bytes | None = None) -> list[Action]:
        body = bytes(self._body) if body is None else body
        self._body = bytearray()
        if self.record.ai_host:
            return self._unknown_api(body, end_of_stream)
        return self._release(body, end_of_stream, reason=self._identity_reason())

    def _unknown_api(
        self,
        body: bytes | None,
        end_of_stream: bool,
        *,
        what: str = "an API Weir does not recognise",
    ) -> list[Action]:
        """A call to a known AI host that Weir cannot judge: a 404 unless allowed."""
        record = self.record
        decision = self._header_decision
        workload = decision.workload if decision is not None else None
        host = f"AI host {record.authority}" if record.ai_host else record.authority
        where = f"{record.method} {record.api_path} on {host}"
        if workload is not None and workload.unknown_apis == ALLOW:
            reason = f"{where} is {what}; let through by workload '{workload.name}' unknownApis"
            return self._release(body, end_of_stream, reason=reason)
        name = f"workload '{workload.name}'" if workload is not None else "the workload"
        reason = f"{where} is {what}; set unknownApis: allow on {name} to let it through"
        if self._refuse_or_audit(reason):
            return [self._refuse(ErrorKind.NOT_FOUND, reason, verdict=Verdict.DENY)]
        return self._release(body, end_of_stream, reason=reason, verdict=Verdict.AUDIT)

    def _release(
        self,
        body: bytes | None,
        end_of_stream: bool,
        *,
        reason: str,
        verdict: Verdict = Verdict.ALLOW,
    ) -> list[Action]:
        """Let an unrecognised request go on: its headers, what was held, the rest flows.

        ``body`` None: the request has no body message (its headers ended the stream, or
        none has come yet).
        """
        if self.record.verdict == Verdict.PENDING or verdict != Verdict.ALLOW:
            self._settle(verdict, reason)
        self._request = _Request.DONE if end_of_stream else _Request.PASSTHROUGH_BODY
        headers = ContinueHeaders(REQUEST, remove_headers=self._strip)
        if body is None or (not body and not end_of_stream):
            return [headers]  # no body message to answer (yet)
        return [headers, *stream_chunks(REQUEST, body, end_of_stream)]

    def _past_sniff_limit(self, chunk: bytes, end_of_stream: bool) -> list[Action]:
        """A JSON body larger than Weir may hold: fail closed where it may be an LLM call.

        To a known AI host, when its top-level keys so far include `model` or
        `messages`, or when it is not plain UTF-8 (a byte-order mark or NUL bytes of
        UTF-16/32, whose keys the byte reader cannot see), it is refused (413), as an
        LLM call that size would be. Otherwise it is ordinary traffic (a large UTF-8 JSON
        upload) and flows on, but its top-level keys are still read and the chunk that
        closes its object is judged before it goes (`_oversize_chunk`): an LLM call padded
        past the limit is refused, and the upstream never receives a complete body.
        """
        limit = self._config.max_request_body
        keys = TopLevelKeys()
        keys.feed(bytes(self._body))
        keys.feed(chunk)
        if (
            self.record.ai_host
            or keys.llm_keys & {MODEL_KEY, "messages"}
            or not plain_json_start(self._body)
        ):
            return [
                self._refuse(
                    ErrorKind.TOO_LARGE,
                    f"request body exceeds Weir's limit of {limit} bytes and may be an LLM call",
                )
            ]
        self._top_keys = keys
        body = bytes(self._body) + chunk
        self._body = bytearray()
        self._settle(
            Verdict.ALLOW,
            f"{self._identity_reason()}; JSON body past the {limit}-byte sniff limit "
            "with no LLM key, streamed with its top-level keys read",
        )
        self._request = _Request.OVERSIZE_BODY
        return [
            ContinueHeaders(REQUEST, remove_headers=self._strip),
            *self._oversize_chunk(body, end_of_stream, fed=True),
        ]

    def _oversize_chunk(
        self, chunk: bytes, end_of_stream: bool, *, final: bool = False, fed: bool = False
    ) -> list[Action]:
        """Forward an oversize body as it comes, judging it whenever its object closes.

        While the top-level object is open, what has been forwarded is no complete JSON
        document, so it flows. The chunk that closes it is judged before it goes: its
        keys are all known then, and an LLM call padded past the limit is refused with
        its closing brace never sent.
        """
        keys = self._top_keys
        assert keys is not None
        if not fed:
            keys.feed(chunk)
        ended = end_of_stream or final
        if (keys.closed or ended) and shape_of(
            dict.fromkeys(keys.keys), self._request_headers
        ) is not None:
            self.record.recognised_by = "body"
            return [
                self._refuse(
                    ErrorKind.TOO_LARGE,
                    "an LLM call padded past Weir's limit of "
                    f"{self._config.max_request_body} bytes; it was not forwarded whole",
                    verdict=Verdict.DENY,
                )
            ]
        if ended:
            self._request = _Request.DONE
            if final and not chunk:
                return []
        elif not chunk:
            return []
        return [*stream_chunks(REQUEST, chunk, end_of_stream)]

    def _judge_request_body(self, *, end_of_stream: bool) -> list[Action]:
        assert self._provider is not None and self._identity is not None
        body = bytes(self._body)
        self._body = bytearray()
        try:
            document = parse_json_object(body)
            llm_request = read_model_and_stream(document)
        except BadRequestBody as exc:
            return [self._refuse(ErrorKind.INVALID_REQUEST, str(exc))]
        self.record.model = llm_request.model
        self.record.stream = llm_request.stream

        decision = self._policy.decide(self._identity.principal, llm_request.model)
        self.record.rule = decision.rule
        if not decision.allowed and self._refuse_or_audit(decision.reason):
            return [self._refuse(ErrorKind.PERMISSION_DENIED, decision.reason)]

        workload = decision.workload
        # The tools it offers the model obey the workload's `tools` (extproc.llm_tools).
        if workload is not None and workload.tool_rules.tools is not None:
            forbidden = forbidden_tool(document, workload.name, workload.tool_rules)
            if forbidden is not None and self._refuse_or_audit(forbidden):
                return [self._refuse(ErrorKind.PERMISSION_DENIED, forbidden)]
        request_plan = self._plans.request(workload)
        self._response_plan = self._plans.response(workload)
        headers = ContinueHeaders(
            REQUEST,
            # Never scan compressed bytes as text: ask the upstream for identity.
            set_headers=(("accept-encoding", "identity"),),
            remove_headers=self._strip,
        )
        if request_plan is not None:
            parts = self._provider.request_texts(document)
            verdict = judge_document(parts, request_plan, "request", document=document)
            self.record.findings.extend(verdict.findings)
            if verdict.blocked_by is not None:
                return [self._refuse_blocked("prompt", verdict.blocked_by, verdict=Verdict.DENY)]
            if verdict.changed:
                try:
                    body = verdict.apply(document)
                except KeyCollision as exc:
                    return [self._refuse(ErrorKind.INVALID_REQUEST, str(exc))]
                headers = ContinueHeaders(
                    REQUEST, headers.set_headers, remove_headers=(*self._strip, "content-length")
                )
        if self.record.verdict == Verdict.PENDING:
            self._settle(Verdict.ALLOW, decision.reason)
        self._request = _Request.DONE
        if workload is not None and workload.budget is not None:
            return self._reserve_budget(workload, document, body, headers, end_of_stream)
        return [headers, *stream_chunks(REQUEST, body, end_of_stream)]

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

    # --- who calls, for whom, and where to -------------------------------------

    def _caller_refusal(
        self, identity: Identity, credentials: Credentials, workload: WorkloadRule | None
    ) -> Respond | None:
        """The tokens' verdict at header time (`mesh.credentials`): a refusal, or None."""
        user = credentials.user
        if isinstance(user, VerifiedToken):
            self.record.user = subject_hash(user.issuer, user.subject)
        # The JWT-SVID counts only where resolution reached its source: a source before
        # it may already have identified the caller.
        sources = self._policy.identity_sources
        tried = sources if identity.source is None else sources[: sources.index(identity.source)]
        svid_used = JWT_SVID in tried
        refusal = credential_refusal(self._policy, credentials, workload, svid_used=svid_used)
        if refusal is None:
            return None
        self.record.token_rejection = refusal.code
        if not self._refuse_or_audit(refusal.reason):
            return None
        kind = {401: ErrorKind.UNAUTHENTICATED, 403: ErrorKind.PERMISSION_DENIED}.get(
            refusal.status, ErrorKind.UNAVAILABLE
        )
        return self._refuse(kind, refusal.reason, verdict=Verdict.DENY)

    def govern_llm_destination(
        self, workload: WorkloadRule | None, provider: Provider
    ) -> Respond | None:
        """The `providers` / `upstreams` allow-lists for an LLM call, however it was
        recognised (by path here; a body-shape recognition calls this too)."""
        if workload is None or not workload.destinations.restricts:
            return None
        authority = header_value(self._request_headers, ":authority") or (
            header_value(self._request_headers, "host") or ""
        )
        reason = destination_refusal(
            workload.name, workload.destinations, provider.name, authority
        )
        if reason is None or not self._refuse_or_audit(reason):
            return None
        return self._refuse(ErrorKind.PERMISSION_DENIED, reason)

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


def _identity_inputs(event: HeadersEvent, credentials: Credentials) -> IdentityInputs:
    attributes = event.attributes
    peer = attributes.get("connection.uri_san_peer_certificate")
    namespace = service_account = None
    node = attributes.get("xds.node")
    if isinstance(node, dict):
        metadata = node.get("metadata")
        if isinstance(metadata, dict):
            ns, sa = metadata.get("NAMESPACE"), metadata.get("SERVICE_ACCOUNT")
            namespace = ns if isinstance(ns, str) else None
            service_account = sa if isinstance(sa, str) else None
    return IdentityInputs(
        peer_uri_san=peer if isinstance(peer, str) and peer else None,
        node_namespace=namespace,
        node_service_account=service_account,
        xfcc=header_value(event.headers, "x-forwarded-client-cert"),
        jwt_svid_subject=(
            credentials.svid.subject if isinstance(credentials.svid, VerifiedToken) else None
        ),
        jwt_svid_problem=svid_problem(credentials),
    )
