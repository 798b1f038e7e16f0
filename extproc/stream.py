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

The response side depends on the workload's response rules and the reply:
- no rules, a non-2xx reply, or no body: it flows through chunk by chunk
  (a 2xx LLM answer is still metered for its usage, by `UsageMeter`);
- an SSE token stream: each chunk goes through `SseGuard` (per-channel
  streaming scanners); only released bytes are answered, so one chunk in may
  be zero or several bytes out;
- a JSON reply: its headers are withheld and the body judged whole, so a
  `block` can still be a clean 403 in the provider's format;
- compressed or any other content type: refused (503) when the rules block
  or redact, since those bytes cannot be scanned; let through when they only
  audit.
`end_of_stream` is sent exactly once, when Envoy has said the body ended.
When a body ends with trailers, the trailers response closes that direction
instead (Envoy's FDS contract).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum, auto

from extproc.audit import FindingRecord
from extproc.document_guard import judge_document
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
from extproc.llm import (
    EMPTY_BODY_REASON,
    BadRequestBody,
    ErrorKind,
    Provider,
    error_format_for,
    provider_for,
)
from extproc.llm.base import (
    BadResponseBody,
    Usage,
    parse_json_object,
    parse_response_body,
    read_model_and_stream,
)
from extproc.scan_plan import ScanPlan, plan_for
from extproc.sse_guard import SseGuard, stream_error_events
from extproc.usage_meter import UsageMeter
from mesh.identity import Identity, IdentityInputs, resolve_identity, unauthenticated_hint
from mesh.policy import Policy

DEFAULT_MAX_REQUEST_BODY = 8 * 1024 * 1024
# A non-streamed response is judged whole; past this size it cannot be, and an
# enforcing policy fails it closed.
DEFAULT_MAX_RESPONSE_BODY = 16 * 1024 * 1024
# Envoy's FDS documentation recommends response chunks of at most 64 KiB.
MAX_EMITTED_CHUNK = 64 * 1024

REQUEST, RESPONSE = Direction.REQUEST, Direction.RESPONSE


class ProtocolError(Exception):
    """Envoy sent something the ext_proc protocol does not allow here.

    The servicer ends the gRPC stream with an error, and Envoy, configured with
    `failure_mode_allow: false`, fails the HTTP exchange closed.
    """


class _Request(Enum):
    EXPECT_HEADERS = auto()
    BUFFERING_BODY = auto()  # an LLM call: body accumulated, headers withheld
    PASSTHROUGH_BODY = auto()  # not an LLM call, identity allowed: chunks flow
    DONE = auto()


class _Response(Enum):
    EXPECT_HEADERS = auto()
    STREAMING_BODY = auto()  # nothing to scan: chunks flow as they come
    GUARDING_STREAM = auto()  # an SSE token stream through the SseGuard
    BUFFERING_BODY = auto()  # a JSON response, judged whole; headers withheld
    ENDED_BY_WEIR = auto()  # blocked mid-stream: the client's response is over
    DONE = auto()


@dataclass(frozen=True, slots=True)
class ExchangeConfig:
    max_request_body: int = DEFAULT_MAX_REQUEST_BODY
    max_response_body: int = DEFAULT_MAX_RESPONSE_BODY


@dataclass(slots=True)
class ExchangeRecord:
    """What happened in one exchange, for the decision log and the metrics."""

    principal: str = ""
    identity_source: str | None = None
    identity_detail: str = ""
    workload: str | None = None
    method: str = ""
    path: str = ""
    provider: str | None = None
    model: str | None = None
    stream: bool | None = None
    # allow | deny | audit (would have been denied, let through by `mode: audit`) | error
    verdict: str = "pending"
    rule: str | None = None
    reason: str = ""
    status: int | None = None
    policy_digest: str = ""
    request_bytes: int = 0
    response_bytes: int = 0
    input_tokens: int | None = None
    output_tokens: int | None = None
    findings: list[FindingRecord] = field(default_factory=list)
    held_bytes_max: int = 0
    started: float = field(default_factory=time.monotonic)


class Exchange:
    """The state of one ext_proc stream (one HTTP request and its response)."""

    def __init__(self, policy: Policy, config: ExchangeConfig | None = None) -> None:
        # The policy is captured once: a reload mid-exchange must not change the
        # rules halfway through one request.
        self._policy = policy
        self._config = config or ExchangeConfig()
        self._request = _Request.EXPECT_HEADERS
        self._response = _Response.EXPECT_HEADERS
        self._closed = False
        self._request_headers: Headers = ()
        self._body = bytearray()
        self._provider: Provider | None = None
        self._identity: Identity | None = None
        self._response_plan: ScanPlan | None = None
        self._guard: SseGuard | None = None
        self._meter: UsageMeter | None = None
        self._guard_recorded = False  # the guard's findings and usage are in the record
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
        return self._guard_recorded or (self._meter is not None and self._meter.saw_terminal)

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
            return self._response_headers_event(event)
        if isinstance(event, BodyEvent):
            return self._response_body_event(event)
        return self._response_trailers_event(event)

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
        if self._request is _Request.BUFFERING_BODY or self._response is _Response.BUFFERING_BODY:
            return [self._refuse(ErrorKind.UNAVAILABLE, reason)]
        if self._response is _Response.GUARDING_STREAM:
            guard = self._guard
            assert guard is not None
            out = guard.terminate(reason)
            self._response = _Response.ENDED_BY_WEIR
            self._close_guard(guard)
            return [StreamBody(RESPONSE, out, True)]
        meter = self._meter
        if self._response is _Response.STREAMING_BODY and meter is not None and meter.event_stream:
            assert self._provider is not None
            # The client may hold half an event: close it so the error event stands alone.
            prefix = b"" if meter.at_event_boundary else b"\n\n"
            self._response = _Response.ENDED_BY_WEIR
            self._meter = None
            self._settle("error", reason)
            ending = stream_error_events(self._provider, reason)
            return [StreamBody(RESPONSE, prefix + ending, True)]
        return []

    # --- request -------------------------------------------------------------

    def _request_headers_event(self, event: HeadersEvent) -> list[Action]:
        if self._request is not _Request.EXPECT_HEADERS:
            raise ProtocolError("request headers received twice")
        self._request_headers = event.headers
        method = header_value(event.headers, ":method") or ""
        path = header_value(event.headers, ":path") or ""
        record = self.record
        record.method, record.path = method, path

        identity = resolve_identity(
            _identity_inputs(event),
            sources=self._policy.identity_sources,
            trust_domain=self._policy.trust_domain,
            trusted_proxies=self._policy.xfcc_trusted_proxies,
        )
        self._identity = identity
        record.principal = identity.principal
        record.identity_source = identity.source
        record.identity_detail = identity.detail

        decision = self._policy.decide(identity.principal, None)
        record.workload = decision.workload.name if decision.workload else None
        record.rule = decision.rule
        self._provider = provider_for(method, path)
        record.provider = self._provider.name if self._provider else None

        if not decision.allowed and self._refuse_or_audit(decision.reason):
            hint = unauthenticated_hint(identity, self._policy.identity_sources)
            return [self._refuse(ErrorKind.PERMISSION_DENIED, decision.reason + hint)]

        if self._provider is None:
            # Not an LLM call Weir understands: identity was enough, bytes flow.
            self._settle("allow", decision.reason)
            self._request = _Request.DONE if event.end_of_stream else _Request.PASSTHROUGH_BODY
            return [ContinueHeaders(REQUEST)]

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
        if self._request is _Request.BUFFERING_BODY:
            # Trailers, not a flagged body chunk, told us the body is complete.
            actions = self._judge_request_body(end_of_stream=False)
            if not self._closed:
                actions.append(ContinueTrailers(REQUEST))
            return actions
        raise ProtocolError(f"request trailers in state {self._request.name}")

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
        enforcing = self._policy.enforcing
        request_plan = plan_for(workload.request if workload else (), enforcing=enforcing)
        self._response_plan = plan_for(workload.response if workload else (), enforcing=enforcing)
        headers = ContinueHeaders(
            REQUEST,
            # Never scan compressed bytes as text: ask the upstream for identity.
            set_headers=(("accept-encoding", "identity"),),
        )
        if request_plan is not None:
            parts = self._provider.request_texts(document)
            verdict = judge_document(parts, request_plan, "request")
            self.record.findings.extend(verdict.findings)
            if verdict.blocked_by is not None:
                return [self._refuse_blocked("prompt", verdict.blocked_by, verdict="deny")]
            if verdict.changed:
                body = self._provider.rewrite_request(document, verdict.replacements)
                headers = ContinueHeaders(
                    REQUEST, headers.set_headers, remove_headers=("content-length",)
                )
        if self.record.verdict == "pending":
            self._settle("allow", decision.reason)
        self._request = _Request.DONE
        return [headers, *_stream_chunks(REQUEST, body, end_of_stream)]

    # --- response ------------------------------------------------------------

    def _response_headers_event(self, event: HeadersEvent) -> list[Action]:
        if self._response is not _Response.EXPECT_HEADERS:
            raise ProtocolError("response headers received twice")
        status = header_value(event.headers, ":status")
        if status is not None and status.isdigit():
            self.record.status = int(status)
        plan = self._response_plan
        if event.end_of_stream:
            self._response = _Response.DONE
            return [ContinueHeaders(RESPONSE)]
        encoding = header_value(event.headers, "content-encoding")
        content_type = (header_value(event.headers, "content-type") or "").lower()
        answered = 200 <= (self.record.status or 0) < 300
        if plan is None or self._provider is None or not answered:
            # Nothing to scan, or the provider's own error reply: it flows as it comes,
            # and an LLM answer is still metered for its usage.
            self._response = _Response.STREAMING_BODY
            if answered and self._provider is not None and encoding in (None, "", "identity"):
                self._meter = UsageMeter(
                    self._provider,
                    event_stream="text/event-stream" in content_type,
                    max_body=self._config.max_response_body,
                )
            return [ContinueHeaders(RESPONSE)]

        observe_only = plan.observe_only
        unscannable = None
        if encoding not in (None, "", "identity"):
            unscannable = f"the upstream response is compressed ({encoding}) and cannot be scanned"
        elif "text/event-stream" in content_type:
            self._guard = SseGuard(self._provider, plan)
            self._response = _Response.GUARDING_STREAM
            return [ContinueHeaders(RESPONSE, remove_headers=("content-length",))]
        elif "json" in content_type:
            self._response = _Response.BUFFERING_BODY
            return []  # withheld until the body is judged, so a block can still be a 403
        else:
            unscannable = f"the upstream response type {content_type!r} cannot be scanned"
        if observe_only:
            self.record.reason = f"not scanned: {unscannable}"
            self._response = _Response.STREAMING_BODY
            return [ContinueHeaders(RESPONSE)]
        return [self._refuse(ErrorKind.UNAVAILABLE, unscannable)]

    def _response_body_event(self, event: BodyEvent) -> list[Action]:
        if self._response is _Response.DONE and event.end_of_stream and not event.chunk:
            # Envoy issue 46237: a duplicate, empty end-of-stream chunk after bodies of
            # about 1 MB in FDS. The stream already ended; answering again would not.
            return []
        self.record.response_bytes += len(event.chunk)
        if self._response is _Response.ENDED_BY_WEIR:
            return []  # what the upstream still sends after a block goes nowhere
        if self._response is _Response.STREAMING_BODY:
            meter = self._meter
            if meter is not None:
                meter.feed(event.chunk)
                if meter.saw_terminal:
                    self._record_usage(meter.usage)
            if event.end_of_stream:
                self._end_streaming_body()
            return [StreamBody(RESPONSE, event.chunk, event.end_of_stream)]
        if self._response is _Response.GUARDING_STREAM:
            return self._guarded_chunk(event.chunk, end_of_stream=event.end_of_stream)
        if self._response is _Response.BUFFERING_BODY:
            if len(self._body) + len(event.chunk) > self._config.max_response_body:
                return [
                    self._refuse(
                        ErrorKind.UNAVAILABLE,
                        "the upstream response exceeds Weir's limit of "
                        f"{self._config.max_response_body} bytes and cannot be judged",
                    )
                ]
            self._body += event.chunk
            return self._judge_response_body(end_of_stream=True) if event.end_of_stream else []
        raise ProtocolError(f"response body in state {self._response.name}")

    def _response_trailers_event(self, event: TrailersEvent) -> list[Action]:
        if self._response is _Response.ENDED_BY_WEIR:
            return []
        if self._response is _Response.STREAMING_BODY:
            self._end_streaming_body()
            return [ContinueTrailers(RESPONSE)]
        if self._response is _Response.GUARDING_STREAM:
            return [*self._guarded_chunk(b"", end_of_stream=False, final=True),
                    ContinueTrailers(RESPONSE)]
        if self._response is _Response.BUFFERING_BODY:
            actions = self._judge_response_body(end_of_stream=False)
            if not self._closed:
                actions.append(ContinueTrailers(RESPONSE))
            return actions
        raise ProtocolError(f"response trailers in state {self._response.name}")

    def _guarded_chunk(
        self, chunk: bytes, *, end_of_stream: bool, final: bool = False
    ) -> list[Action]:
        guard = self._guard
        assert guard is not None
        out = guard.feed(chunk) if chunk else b""
        self.record.held_bytes_max = max(self.record.held_bytes_max, guard.held_bytes)
        if guard.terminated and not end_of_stream:
            # The client already has the error event and terminator: end its response now
            # instead of when the upstream finishes. Envoy 1.40 accepts end_of_stream before
            # its own and stops reading the upstream, so no more tokens are paid for
            # (pinned by tests/e2e/test_stream_enforcement.py).
            self._response = _Response.ENDED_BY_WEIR
            self._close_guard(guard)
            return [StreamBody(RESPONSE, out, True)]
        if end_of_stream or final:
            out += guard.finish()
            self._response = _Response.DONE
            self._close_guard(guard)
        elif guard.saw_terminal:
            # Everything the answer had is judged and released with this chunk.
            self._close_guard(guard)
        if not out and not end_of_stream:
            return []  # everything is held: no message to Envoy for this chunk
        return [StreamBody(RESPONSE, out, end_of_stream)]

    def _close_guard(self, guard: SseGuard) -> None:
        if self._guard_recorded:
            return
        self._guard_recorded = True
        self.record.findings.extend(guard.findings)
        self._record_usage(guard.usage)
        if guard.blocked_by is not None:
            hit = guard.blocked_by
            self._settle("block", f"response blocked: rule '{hit.rule}' ({hit.scanner})")
        elif guard.failure is not None:
            self._settle("error" if guard.ended else self.record.verdict, guard.failure)

    def _judge_response_body(self, *, end_of_stream: bool) -> list[Action]:
        assert self._provider is not None and self._response_plan is not None
        body = bytes(self._body)
        self._body = bytearray()
        self._response = _Response.DONE
        plan = self._response_plan
        observe_only = plan.observe_only
        try:
            document = parse_response_body(body)
        except BadResponseBody as exc:
            if observe_only:
                self.record.reason = f"not scanned: {exc}"
                return [ContinueHeaders(RESPONSE), *_stream_chunks(RESPONSE, body, end_of_stream)]
            return [self._refuse(ErrorKind.UNAVAILABLE, f"unreadable upstream response: {exc}")]
        self._record_usage(self._provider.usage(document))
        verdict = judge_document(self._provider.response_texts(document), plan, "response")
        self.record.findings.extend(verdict.findings)
        if verdict.blocked_by is not None:
            return [self._refuse_blocked("response", verdict.blocked_by, verdict="block")]
        headers = ContinueHeaders(RESPONSE)
        if verdict.changed:
            body = self._provider.rewrite_response(document, verdict.replacements)
            headers = ContinueHeaders(RESPONSE, remove_headers=("content-length",))
        return [headers, *_stream_chunks(RESPONSE, body, end_of_stream)]

    def _end_streaming_body(self) -> None:
        self._response = _Response.DONE
        if self._meter is not None:
            self._record_usage(self._meter.finish())
            self._meter = None

    def _record_usage(self, usage: Usage | None) -> None:
        if usage is not None:
            self.record.input_tokens = usage.input_tokens
            self.record.output_tokens = usage.output_tokens

    # --- verdicts --------------------------------------------------------------

    def _refuse_or_audit(self, reason: str) -> bool:
        """True when the refusal must be enforced; in audit mode it is only recorded."""
        if self._policy.enforcing:
            return True
        self._settle("audit", reason)
        return False

    def _settle(self, verdict: str, reason: str) -> None:
        self.record.verdict = verdict
        self.record.reason = reason

    def _refuse_blocked(self, what: str, hit: FindingRecord, *, verdict: str) -> Respond:
        """The 403 for a whole prompt or answer a `block` rule matched: the rule, never the text."""
        return self._refuse(
            ErrorKind.PERMISSION_DENIED,
            f"{what} blocked by policy: rule '{hit.rule}' ({hit.scanner}) matched in {hit.where}",
            verdict=verdict,
        )

    def _refuse(self, kind: ErrorKind, message: str, verdict: str | None = None) -> Respond:
        path = header_value(self._request_headers, ":path") or ""
        error_format = self._provider or error_format_for(path)
        self._closed = True
        self._request = _Request.DONE
        if verdict is None:
            verdict = "deny" if kind is ErrorKind.PERMISSION_DENIED else "error"
        self._settle(verdict, message)
        self.record.status = kind.status
        return Respond(
            status=kind.status,
            body=error_format.error_body(kind, f"weir: {message}"),
            headers=(("content-type", "application/json"), ("x-weir-verdict", self.record.verdict)),
            details=f"weir_{kind.name.lower()}",
        )


def _stream_chunks(direction: Direction, body: bytes, end_of_stream: bool) -> list[StreamBody]:
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


def _identity_inputs(event: HeadersEvent) -> IdentityInputs:
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
    )
