"""The MCP steps of `extproc.stream.Exchange`, kept beside the MCP modules.

`Exchange` inherits these hooks; each is called from one place in the state
machine (request headers, request body, response headers, response body,
trailers, terminate). They turn `McpCall` / `McpSseGuard` verdicts into the
exchange's actions: MCP requests are held whole with their headers withheld
(so a refused `tools/call` never reaches the server), and answers are judged
as a whole JSON message or message by message over SSE.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from extproc.events import (
    Action,
    ContinueHeaders,
    Direction,
    Headers,
    HeadersEvent,
    Respond,
    StreamBody,
    header_value,
)
from extproc.llm.base import BadResponseBody, ErrorKind, parse_response_json
from extproc.mcp.guard import McpCall, McpRefusal, McpSseGuard
from extproc.mcp.jsonrpc import (
    INVALID_REQUEST,
    REFUSED_BY_POLICY,
    error_body,
    looks_like_jsonrpc,
)
from extproc.request_path import normalise_path
from mesh.verdicts import Verdict

if TYPE_CHECKING:
    from extproc.audit import FindingRecord
    from extproc.scan_plan import PolicyPlans
    from mesh.policy import Policy, WorkloadRule

REQUEST, RESPONSE = Direction.REQUEST, Direction.RESPONSE
# JSON-RPC methods that make a JSON-RPC body on an unrecognised path an MCP message.
_MCP_METHOD_PREFIXES = (
    "tools/", "resources/", "prompts/", "notifications/", "completion/", "logging/",
    "sampling/", "elicitation/", "roots/", "tasks/", "subscriptions/", "server/",
)
_MCP_METHODS = frozenset({"initialize", "ping"})


def is_mcp_method(method: object) -> bool:
    return isinstance(method, str) and (
        method in _MCP_METHODS or method.startswith(_MCP_METHOD_PREFIXES)
    )


class McpHooks:
    """Mixed into `Exchange`: the attributes below are the exchange's own."""

    if TYPE_CHECKING:
        _policy: Policy
        _request: Any
        _response: Any
        _body: bytearray
        _closed: bool
        _request_headers: Headers
        _strip: tuple[str, ...]
        _config: Any
        _plans: PolicyPlans
        record: Any

        def _settle(self, verdict: Verdict, reason: str) -> None: ...
        def _refuse(
            self, kind: ErrorKind, message: str, verdict: Verdict | None = None
        ) -> Respond: ...

    def _init_mcp(self) -> None:
        self._mcp: McpCall | None = None
        self._mcp_sse: McpSseGuard | None = None
        # The MCP server whose shared pins the servicer must load (`answer_pins`), if any.
        self.pins_ask: str | None = None
        self._mcp_after_pins: Callable[[], list[Action]] | None = None

    def answer_pins(self, loaded: bool) -> list[Action]:
        """The servicer loaded `pins_ask`'s pins (``loaded`` False: the store did not answer).

        Returns the actions that waited for them.
        """
        from extproc.stream import ProtocolError

        resume, call = self._mcp_after_pins, self._mcp
        if self.pins_ask is None or resume is None or call is None:
            raise ProtocolError("a pin answer with no pin question")
        self.pins_ask, self._mcp_after_pins = None, None
        call.pins_loaded(loaded)
        return resume()

    def _after_pins_ask(self, action: Action) -> list[Action]:
        """`action` now, or after the held message when the exchange waits for pins
        (request trailers must follow the request they end)."""
        resume = self._mcp_after_pins
        if self.pins_ask is None or resume is None:
            return [action]

        def then() -> list[Action]:
            actions = resume()
            return actions if self._closed else [*actions, action]

        self._mcp_after_pins = then
        return []

    def _ask_pins(self, call: McpCall, resume: Callable[[], list[Action]]) -> list[Action]:
        self.pins_ask = call.server
        self._mcp_after_pins = resume
        return []

    # --- request ---------------------------------------------------------------

    def _mcp_path(self, method: str, path: str) -> bool:
        canonical = normalise_path(path).canonical
        return any(canonical == normalise_path(p).canonical for p in self._policy.mcp_paths)

    def _start_mcp(self, workload: WorkloadRule | None, recognised_by: str) -> None:
        self._mcp = McpCall(
            workload.name if workload is not None else None,
            workload.tool_rules if workload is not None else None,
            self._policy.enforcing,
            plans=self._plans.mcp(workload),
            pins=self._config.pins,
            server=self.record.authority or "(unknown)",
            pin_store=self._policy.pin_store,
        )
        record = self.record
        record.recognised_by = f"mcp-{recognised_by}"
        record.mcp_server = record.authority or None

    def _mcp_request_headers(self, event: HeadersEvent) -> list[Action]:
        from extproc.stream import _Request

        method = (header_value(event.headers, ":method") or "").upper()
        if method != "POST":
            # A 2025-06-18 session's GET stream (server-to-client messages, guarded on the
            # way back) or DELETE (the session's end): nothing to judge on the way out,
            # and each is an MCP call of its own in the records (method GET / DELETE).
            call = self._mcp
            assert call is not None
            call.server_stream = method == "GET"
            self.record.mcp_method = method or None
            self._request = _Request.DONE if event.end_of_stream else _Request.PASSTHROUGH_BODY
            what = "the session's server stream" if method == "GET" else (
                "the session's end" if method == "DELETE" else "the session endpoint")
            whose = f" for workload '{call.workload}'" if call.workload else ""
            self._settle(Verdict.ALLOW, f"MCP {method} ({what}){whose}")
            headers = ContinueHeaders(REQUEST, remove_headers=self._strip)
            if call.server_stream and call.scans_responses:
                headers = ContinueHeaders(
                    REQUEST, set_headers=(("accept-encoding", "identity"),),
                    remove_headers=self._strip,
                )
                if call.wants_pins:
                    # A tools list may come on the stream: judged against the shared pins.
                    return self._ask_pins(call, lambda: [headers])
            return [headers]
        if event.end_of_stream:
            return [self._mcp_problem(INVALID_REQUEST, "invalid request: the body is empty")]
        encoding = header_value(event.headers, "content-encoding")
        if encoding not in (None, "", "identity"):
            return [self._mcp_problem(
                INVALID_REQUEST, f"MCP bodies with content-encoding {encoding!r} are not accepted"
            )]
        self._request = _Request.MCP_BODY
        return []

    def _mcp_sniffed(self, body: bytes) -> bool:
        """A sniffed JSON body that is an MCP message: the exchange becomes an MCP call."""
        if b"jsonrpc" not in body:
            return False
        try:
            document = parse_response_json(body.decode("utf-8"), "the body")
        except (BadResponseBody, UnicodeDecodeError):
            return False
        if not looks_like_jsonrpc(document):
            return False
        assert isinstance(document, dict)
        if not is_mcp_method(document.get("method")):
            return False
        from extproc.stream import _Request

        decision = self._policy.decide(self.record.principal, None)
        self._start_mcp(decision.workload, "body")
        self._request = _Request.MCP_BODY
        return True

    def _mcp_request_chunk(
        self, chunk: bytes, end_of_stream: bool, *, final: bool = False
    ) -> list[Action]:
        from extproc.stream import _Request, _stream_chunks

        if len(self._body) + len(chunk) > self._config.max_request_body:
            return [self._refuse(
                ErrorKind.TOO_LARGE,
                f"MCP message exceeds Weir's limit of {self._config.max_request_body} bytes",
            )]
        self._body += chunk
        if not (end_of_stream or final):
            return []
        call = self._mcp
        assert call is not None
        body = bytes(self._body)
        self._body = bytearray()
        verdict = call.judge_request(body, self._request_headers)
        if verdict.needs_pins:
            self._body = bytearray(body)  # judged again once the pins are here
            return self._ask_pins(call, lambda: self._mcp_request_chunk(
                b"", end_of_stream, final=final
            ))
        record = self.record
        record.mcp_method, record.tool_name = call.method, call.tool
        record.findings.extend(call.findings)
        if verdict.refusal is not None:
            return [self._mcp_respond(verdict.refusal)]
        if verdict.audited is not None:
            self._settle(Verdict.AUDIT, verdict.audited)
        elif record.verdict == "pending":
            what = f"tool '{call.tool}'" if call.tool else f"MCP {call.method or 'message'}"
            self._settle(Verdict.ALLOW, f"{what} allowed for workload '{call.workload}'")
        if call.pins_note is not None:
            self._settle(record.verdict, f"{record.reason}; {call.pins_note}")
        remove = self._strip
        if verdict.body is not None:
            body = verdict.body
            remove = (*remove, "content-length")
        self._request = _Request.DONE
        headers = ContinueHeaders(
            REQUEST, set_headers=(("accept-encoding", "identity"),), remove_headers=remove
        )
        return [headers, *_stream_chunks(REQUEST, body, end_of_stream)]

    def _mcp_problem(self, code: int, message: str) -> Respond:
        return self._mcp_respond(McpRefusal(400, error_body(None, code, f"weir: {message}"),
                                            message, "error"))

    def _mcp_respond(self, refusal: McpRefusal) -> Respond:
        from extproc.stream import _Request

        self._closed = True
        self._request = _Request.DONE
        self._settle(Verdict(refusal.verdict), refusal.reason)
        self.record.status = refusal.status
        return Respond(
            status=refusal.status,
            body=refusal.body,
            headers=(("content-type", "application/json"), ("x-weir-verdict", refusal.verdict)),
            details="weir_mcp_refused",
        )

    def _mcp_error_body(self, kind: ErrorKind, message: str) -> bytes:
        code = {
            ErrorKind.INVALID_REQUEST: INVALID_REQUEST,
        }.get(kind, REFUSED_BY_POLICY)
        call = self._mcp
        msg_id = call.message.id if call is not None and call.message is not None else None
        return error_body(msg_id, code, message)

    # --- response --------------------------------------------------------------

    def _mcp_response_headers(self, event: HeadersEvent) -> list[Action]:
        from extproc.stream import _Response

        call = self._mcp
        assert call is not None
        status = self.record.status or 0
        judged = call.message is not None or call.server_stream
        if not 200 <= status < 300 or not judged or not call.scans_responses:
            self._response = _Response.STREAMING_BODY
            return [ContinueHeaders(RESPONSE)]
        encoding = header_value(event.headers, "content-encoding")
        content_type = (header_value(event.headers, "content-type") or "").lower()
        if encoding not in (None, "", "identity"):
            return [self._refuse(
                ErrorKind.UNAVAILABLE, f"the MCP answer is compressed ({encoding}) and unscannable"
            )]
        if "text/event-stream" in content_type:
            self._mcp_sse = McpSseGuard(call, self._config.max_response_body)
            self._response = _Response.MCP_STREAM
            return [ContinueHeaders(RESPONSE, remove_headers=("content-length",))]
        if "json" in content_type:
            self._response = _Response.MCP_JSON
            return []  # withheld until the answer is judged
        return [self._refuse(
            ErrorKind.UNAVAILABLE, f"the MCP answer's type {content_type!r} cannot be scanned"
        )]

    def _mcp_response_chunk(
        self, chunk: bytes, end_of_stream: bool, *, final: bool = False
    ) -> list[Action]:
        from extproc.stream import _Response, _stream_chunks

        call = self._mcp
        assert call is not None
        ended = end_of_stream or final
        if self._response is _Response.MCP_STREAM:
            guard = self._mcp_sse
            assert guard is not None
            out = guard.feed(chunk) if chunk else b""
            self.record.held_bytes_max = max(self.record.held_bytes_max, guard.held_bytes)
            if not guard.terminated and ended:
                out += guard.finish()
            if guard.terminated:
                self._response = _Response.ENDED_BY_WEIR
                self._mcp_close(call, guard.failure)
                return [StreamBody(RESPONSE, out, True)]
            if ended:
                self._response = _Response.DONE
                self._mcp_close(call, None)
            if not out and not end_of_stream:
                return []
            return [StreamBody(RESPONSE, out, end_of_stream)]
        if len(self._body) + len(chunk) > self._config.max_response_body:
            return [self._refuse(
                ErrorKind.UNAVAILABLE,
                "the MCP answer exceeds Weir's limit of "
                f"{self._config.max_response_body} bytes and cannot be judged",
            )]
        self._body += chunk
        if not ended:
            return []
        body = bytes(self._body)
        self._body = bytearray()
        self._response = _Response.DONE
        try:
            replaced = call.judge_json_body(body)
        except BadResponseBody as exc:
            return [self._refuse(ErrorKind.UNAVAILABLE, f"unreadable MCP answer: {exc}")]
        self._mcp_close(call, None)
        if replaced is None:
            return [ContinueHeaders(RESPONSE), *_stream_chunks(RESPONSE, body, end_of_stream)]
        headers = ContinueHeaders(RESPONSE, remove_headers=("content-length",))
        return [headers, *_stream_chunks(RESPONSE, replaced, end_of_stream)]

    def _mcp_close(self, call: McpCall, failure: str | None) -> None:
        record = self.record
        findings: list[FindingRecord] = [f for f in call.findings if f.direction == "response"]
        record.findings.extend(findings)
        if call.withheld:
            self._settle(record.verdict, f"{record.reason}; withheld from tools/list: "
                         + ", ".join(call.withheld))
        if call.pins_note is not None and call.pins_note not in (record.reason or ""):
            self._settle(record.verdict, f"{record.reason}; {call.pins_note}")
        if call.list_changed:
            self._settle(record.verdict, f"{record.reason}; the server announced "
                         "tools/list_changed")
        if call.drifted:
            self._settle(record.verdict, f"{record.reason}; tool definitions drifted from their "
                         "pins: " + ", ".join(call.drifted))
        if call.blocked is not None:
            self._settle(Verdict.BLOCK, call.blocked)
        elif failure is not None:
            self._settle(Verdict.ERROR, failure)

    def _mcp_terminate(self, reason: str) -> list[Action]:
        from extproc.stream import _Response

        guard = self._mcp_sse
        assert guard is not None and self._mcp is not None
        out = guard.fail(reason)
        self._response = _Response.ENDED_BY_WEIR
        self._mcp_close(self._mcp, reason)
        return [StreamBody(RESPONSE, out, True)]
