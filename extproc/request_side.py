"""The request side of `extproc.stream.Exchange`: who calls, and whether the request goes on.

`Exchange` inherits these steps (a mixin, like the MCP hooks). On request headers the
caller's identity is resolved (`mesh.identity`, `mesh.credentials`) and the policy
consulted; an unknown workload is refused at once. For an LLM call the headers
response itself is *withheld* until the body has been read and judged: in FDS Envoy
forwards the request headers upstream as soon as we answer them, so answering early
would let a request whose model is refused reach the upstream (as headers, then a
reset). A request on a path Weir does not recognise has its body sniffed
(`extproc.body_shape`): an LLM call by its shape is judged as one, anything else flows
on, and a known AI host's unrecognised API is refused unless the workload allows it.

The judged request body sets the response plan the response side will use
(`_response_plan`), and a budgeted workload's request waits for its reservation
(`_reserve_budget`).
"""

from __future__ import annotations

from enum import Enum, auto
from typing import TYPE_CHECKING

from extproc.audit import subject_hash
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
from extproc.document_guard import KeyCollision, judge_document
from extproc.events import (
    Action,
    BodyEvent,
    ContinueHeaders,
    ContinueTrailers,
    Direction,
    Headers,
    HeadersEvent,
    ProtocolError,
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
    provider_for,
    provider_named,
)
from extproc.llm.anthropic_messages import AnthropicMessages
from extproc.llm.base import parse_json_object, read_model_and_stream
from extproc.llm_tools import forbidden_tool
from extproc.mcp.exchange import McpHooks
from extproc.request_path import normalise_path
from extproc.response_body import stream_chunks
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
from mesh.jwt import VerifiedToken
from mesh.policy import ALLOW, Decision, WorkloadRule
from mesh.verdicts import Verdict

if TYPE_CHECKING:
    from extproc.audit import FindingRecord
    from extproc.scan_plan import ScanPlan
    from mesh.jwt import KeyLookup

REQUEST = Direction.REQUEST

# A refusal of a request that carries an anthropic-version header speaks Anthropic.
_ANTHROPIC_ERRORS: Provider = AnthropicMessages()


class _Request(Enum):
    EXPECT_HEADERS = auto()
    BUFFERING_BODY = auto()  # an LLM call: body accumulated, headers withheld
    SNIFFING_BODY = auto()  # path unrecognised: is the body an LLM call? headers withheld
    OVERSIZE_BODY = auto()  # a JSON body past the sniff limit: flows, judged as it closes
    PASSTHROUGH_BODY = auto()  # not an LLM call, identity allowed: chunks flow
    MCP_BODY = auto()  # an MCP message (extproc.mcp): held whole, judged, headers withheld
    DONE = auto()




class RequestSide(McpHooks):
    """Mixed into `Exchange`: the request's steps. The state is the exchange's own."""

    if TYPE_CHECKING:
        _keys: KeyLookup
        _response_plan: ScanPlan | None

        def _refuse_or_audit(self, reason: str) -> bool: ...
        def _refuse_blocked(
            self, what: str, hit: FindingRecord, *, verdict: Verdict
        ) -> Respond: ...
        def _reserve_budget(
            self,
            workload: WorkloadRule,
            document: dict[str, object],
            body: bytes,
            headers: ContinueHeaders,
            end_of_stream: bool,
        ) -> list[Action]: ...

    def _init_request(self) -> None:
        self._request = _Request.EXPECT_HEADERS
        self._request_headers: Headers = ()
        self._body = bytearray()
        self._provider: Provider | None = None
        self._identity: Identity | None = None
        self._header_decision: Decision | None = None
        self._error_format: Provider | None = None
        self._json_start: bool | None = None  # may the sniffed body be a JSON object?
        self._top_keys: TopLevelKeys | None = None  # an oversize body's top-level keys
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
                actions += self._after_pins_ask(ContinueTrailers(REQUEST))
            return actions
        if self._request is _Request.MCP_BODY:
            actions = self._mcp_request_chunk(b"", end_of_stream=False, final=True)
            if not self._closed:
                actions += self._after_pins_ask(ContinueTrailers(REQUEST))
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
