"""One MCP exchange judged: the client's message, then what the server answers.

Sans-I/O, like `extproc.stream`, which drives it (bytes in, bytes or a
refusal out). The request side:
- a `tools/call` for a tool outside the workload's `tools` is refused before
  the server sees it, with a JSON-RPC error naming the rule;
- routing headers (`Mcp-Method`, `Mcp-Name`) that disagree with the body are
  refused (`-32020`, the SDK's own code);
- a call's arguments are scanned with `mcp.request` (block refuses, redact
  rewrites the strings in the JSON, so the message stays valid JSON-RPC).
The response side, whether the server answers with one JSON message or an
SSE stream of them (`McpSseGuard`):
- a `tools/list` result is filtered: tools outside `tools` are removed, and
  each definition is scanned with `mcp.response` (tool poisoning: a `block`
  finding withholds the tool, `redact` rewrites it, `audit` records it);
- a `tools/call` result (and any other answer) is scanned with `mcp.response`:
  a `block` finding replaces the answer with a JSON-RPC error for the same id,
  `redact` rewrites the strings;
- a server notification in the stream (progress, logs) is scanned too; one a
  `block` rule matches is dropped;
- object keys (argument names, structured content's keys, schema property
  names) are scanned with the same rules, as the LLM side's sweep does. A key
  cannot be rewritten in flight, so a key a `redact` or `block` rule matches
  refuses the call, replaces the answer with an error (over SSE: ends the
  stream), drops the notification, or withholds the tool from a list.
An SSE message is released only once it is whole and judged, so no byte of a
blocked match ever leaves, however the stream is split. A 2025-06-18 session's
GET stream (`server_stream`) is judged the same way: its notifications and
server requests with `mcp.response`, a result on it that lists tools as a
`tools/list` answer (filtered, poisoning, drift: a shared store's pins are
loaded when the stream opens), any other result as a result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from extproc.audit import FindingRecord
from extproc.document_guard import all_clean, judge_document
from extproc.events import Headers
from extproc.llm.base import BadResponseBody, TextPart, parse_response_json, replace_values
from extproc.mcp.adapter import (
    TOOLS_CALL,
    TOOLS_LIST,
    TOOLS_LIST_CHANGED,
    argument_keys,
    argument_texts,
    definition_keys,
    definition_texts,
    header_mismatch,
    listed_tools,
    notification_keys,
    notification_texts,
    result_keys,
    result_texts,
    tool_name,
)
from extproc.mcp.jsonrpc import (
    HEADER_MISMATCH,
    INVALID_PARAMS,
    REFUSED_BY_POLICY,
    JsonRpcMessage,
    JsonRpcProblem,
    dump_message,
    error_document,
    message_of,
    parse_body,
)
from extproc.mcp.pins import PinCheck, PinStore, tool_digest
from extproc.scan_plan import ScanPlan
from extproc.sse import SseError, SseEvent, SseParser, serialize
from mesh.mcp_policy import PinStoreRule, ToolRules, decide_tool
from mesh.verdicts import Action


@dataclass(frozen=True, slots=True)
class McpRefusal:
    """A client message Weir answers itself: HTTP status, JSON-RPC error body, why."""

    status: int
    body: bytes
    reason: str
    # "deny" (policy), "error" (malformed), or "audit" when `mode: audit` lets it through.
    verdict: str


@dataclass(frozen=True, slots=True)
class McpRequestVerdict:
    refusal: McpRefusal | None = None
    # The body to forward when Weir rewrote it (a redacted argument), else None.
    body: bytes | None = None
    # A refusal the policy's audit mode turns into a record (the call goes on).
    audited: str | None = None
    # The server's pins must be loaded first (a shared store): ask, then judge again.
    needs_pins: bool = False


def problem_refusal(problem: JsonRpcProblem) -> McpRefusal:
    return McpRefusal(
        400,
        dump_message(error_document(problem.id, problem.code, problem.message)),
        problem.message,
        "error",
    )


class McpCall:
    """The MCP state of one HTTP exchange (one POSTed message and its answer)."""

    message: JsonRpcMessage | None
    findings: list[FindingRecord]
    withheld: list[str]  # tools removed from a list, and why
    blocked: str | None  # why an answer was replaced with an error
    drifted: list[str]  # tools whose definition drifted from its pin

    def __init__(
        self,
        workload: str | None,
        rules: ToolRules | None,
        enforcing: bool,
        *,
        plans: tuple[ScanPlan | None, ScanPlan | None] = (None, None),
        pins: PinStore | None = None,
        server: str = "",
        pin_store: PinStoreRule | None = None,
    ) -> None:
        # The `mcp` plans were compiled with the policy (extproc.scan_plan), never here.
        self.workload, self.rules, self.enforcing = workload, rules, enforcing
        self._request_plan, self._response_plan = plans
        self.pins, self.server = pins, server
        self.pin_store = pin_store or PinStoreRule()
        # A shared pin store's view of this server: "unloaded", "loaded" or "unavailable".
        self.pins_state = "unloaded"
        self.pins_note: str | None = None  # pins left unchecked (pinStore.onUnavailable: open)
        self.message = None
        # A 2025-06-18 session's GET stream: server messages that answer no request here.
        self.server_stream = False
        self.list_changed = False  # the server announced notifications/tools/list_changed
        self.findings = []
        self.withheld = []
        self.blocked = None
        self.drifted = []

    @property
    def method(self) -> str | None:
        return self.message.method if self.message is not None else None

    @property
    def tool(self) -> str | None:
        return tool_name(self.message) if self.message is not None else None

    @property
    def scans_responses(self) -> bool:
        """Whether the answer must be read: a list to filter or rules to apply."""
        if self._response_plan is not None:
            return True
        if self.server_stream:
            # A tools/list result may come on it (a resumed stream): filtered and pinned.
            pinned = self.pins is not None and self.pinning != "off"
            return pinned or (self.rules is not None and self.rules.tools is not None)
        if self.method == TOOLS_LIST and self.pins is not None and self.pinning != "off":
            return True  # every listing is checked against the pins
        restricted = self.rules is not None and self.rules.tools is not None
        return restricted and self.method == TOOLS_LIST

    # --- the client's message -------------------------------------------------

    def judge_request(self, body: bytes, headers: Headers) -> McpRequestVerdict:
        try:
            message = parse_body(body)
        except JsonRpcProblem as problem:
            return McpRequestVerdict(problem_refusal(problem))
        self.message = message
        mismatch = header_mismatch(headers, message)
        if mismatch is not None:
            # Never audit-only: which of the two the server reads is unknown.
            return McpRequestVerdict(
                McpRefusal(
                    400,
                    dump_message(error_document(message.id, HEADER_MISMATCH, f"weir: {mismatch}")),
                    mismatch,
                    "deny",
                )
            )
        if self.wants_pins and message.method in (TOOLS_CALL, TOOLS_LIST):
            if self.pins_state == "unloaded":
                return McpRequestVerdict(needs_pins=True)
            if self.pins_state == "unavailable":
                down = self._pins_down(message)
                if down is not None:
                    return down
        if message.method == TOOLS_CALL:
            name = tool_name(message)
            if name is None:
                missing = JsonRpcProblem(
                    INVALID_PARAMS, "invalid params: tools/call needs params.name", message.id
                )
                return McpRequestVerdict(problem_refusal(missing))
            decision = decide_tool(self.workload, self.rules, name)
            if not decision.allowed:
                if not self.enforcing:
                    return McpRequestVerdict(audited=decision.reason)
                return McpRequestVerdict(self._refusal(message, decision.reason, decision.rule))
            pinned = self._pin_refusal(name)
            if pinned is not None:
                if not self.enforcing:
                    return McpRequestVerdict(audited=pinned)
                return McpRequestVerdict(self._refusal(message, pinned, self.workload or ""))
        plan = self._request_plan
        if plan is None:
            return McpRequestVerdict()
        key_hit = self._key_hit(argument_keys(message), plan, "request")
        if key_hit is not None:
            reason = (
                f"tool arguments refused by policy: rule '{key_hit.rule}' ({key_hit.scanner}) "
                f"matched an object key in {key_hit.where}, and a key cannot be rewritten"
            )
            return McpRequestVerdict(self._refusal(message, reason, self.workload or ""))
        verdict = judge_document(argument_texts(message), plan, "request")
        self.findings.extend(verdict.findings)
        if verdict.blocked_by is not None:
            hit = verdict.blocked_by
            reason = (
                f"tool arguments blocked by policy: rule '{hit.rule}' ({hit.scanner}) "
                f"matched in {hit.where}"
            )
            return McpRequestVerdict(self._refusal(message, reason, self.workload or ""))
        if verdict.changed:
            document = replace_values(message.document, verdict.replacements)
            return McpRequestVerdict(body=dump_message(document))
        return McpRequestVerdict()

    @property
    def wants_pins(self) -> bool:
        """Whether this call reads a shared pin store, which must be loaded first."""
        return self.pins is not None and self.pins.shared and self.pinning != "off"

    def pins_loaded(self, loaded: bool) -> None:
        self.pins_state = "loaded" if loaded else "unavailable"

    def _pins_down(self, message: JsonRpcMessage) -> McpRequestVerdict | None:
        """The shared pin store did not answer: `pinStore.onUnavailable` decides."""
        if not self.pin_store.fails_closed:
            self.pins = None  # this call goes on unpinned, and says so
            self.pins_note = (
                "pins unchecked: the MCP pin store is unavailable (pinStore.onUnavailable: open)"
            )
            return None
        reason = "the MCP pin store is unavailable (pinStore.onUnavailable: closed)"
        if not self.enforcing:
            self.pins = None
            return McpRequestVerdict(audited=reason)
        data = {"rule": "pinStore", "verdict": "error"}
        document = error_document(
            message.id, REFUSED_BY_POLICY, f"weir: {reason}; retry shortly", data
        )
        return McpRequestVerdict(McpRefusal(503, dump_message(document), reason, "error"))

    @property
    def pinning(self) -> str:
        return self.rules.pinning if self.rules is not None else "audit"

    def _pin_refusal(self, tool: str) -> str | None:
        if self.pins is None or self.pinning == "off":
            return None
        return self.pins.refusal(self.server, tool, enforce_drift=self.pinning == "enforce")

    def _pin(self, tool: str, definition: Mapping[str, object], *, poisoned: bool) -> str | None:
        """Record the definition; why `enforce` hides it (drift), or None."""
        if self.pins is None or self.pinning == "off":
            return None
        if self.pins_state == "unavailable":
            # Only on a GET stream (a POSTed tools/list was answered at the request).
            if self.pin_store.fails_closed and self.enforcing:
                return "its pins are unknown: the MCP pin store is unavailable " \
                    "(pinStore.onUnavailable: closed)"
            self.pins_note = (
                "pins unchecked: the MCP pin store is unavailable (pinStore.onUnavailable: open)"
            )
            return None
        check = self.pins.observe(self.server, tool, tool_digest(definition), poisoned=poisoned)
        if check is not PinCheck.DRIFT:
            return None
        self.drifted.append(tool)
        return "drifted from its pin" if self.pinning == "enforce" and self.enforcing else None

    def _key_hit(
        self, parts: list[TextPart], plan: ScanPlan, direction: str
    ) -> FindingRecord | None:
        """The finding of a `block` or `redact` rule in an object key, or None."""
        if not parts or all_clean(plan, {part.text for part in parts}):
            return None
        verdict = judge_document(parts, plan, direction)
        self.findings.extend(verdict.findings)
        if verdict.blocked_by is not None:
            return verdict.blocked_by
        return next((f for f in verdict.findings if f.action is Action.REDACT), None)

    def _refusal(self, message: JsonRpcMessage, reason: str, rule: str) -> McpRefusal:
        data = {"rule": rule, "verdict": "deny"}
        document = error_document(message.id, REFUSED_BY_POLICY, f"weir: {reason}", data)
        return McpRefusal(403, dump_message(document), reason, "deny")

    # --- the server's answer ----------------------------------------------------

    def judge_json_body(self, body: bytes) -> bytes | None:
        """A JSON answer judged whole: the bytes to send instead, or None if unchanged.

        Raises BadResponseBody when it is no JSON-RPC message (the caller fails closed).
        """
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadResponseBody("the MCP answer is not valid UTF-8") from exc
        document = parse_response_json(text, "the MCP answer")
        replaced = self.judge_server_document(document)
        if replaced is document:
            return None
        return b"" if replaced is None else dump_message(replaced)

    def judge_server_document(self, document: object) -> object | None:
        """One server message: itself, a rewritten copy, or None to drop it."""
        try:
            message = message_of(document)
        except JsonRpcProblem as problem:
            raise BadResponseBody(
                f"the MCP answer is no JSON-RPC message: {problem.message}"
            ) from None
        request = self.message
        answers_request = (
            message.is_response and request is not None and message.id == request.id
        )
        if answers_request and message.result is not None:
            assert request is not None
            if request.method == TOOLS_LIST:
                return self._filter_tools(message)
            return self._scan(message, result_texts(message), result_keys(message), answers=True)
        if self.server_stream and message.is_response and message.result is not None:
            # On the GET stream no request of this exchange says what a result answers: one
            # that lists tools is judged as a tools/list answer, any other as a result.
            if isinstance(message.result.get("tools"), list):
                return self._filter_tools(message)
            return self._scan(message, result_texts(message), result_keys(message), answers=True)
        if message.method == TOOLS_LIST_CHANGED:
            self.list_changed = True  # the client's next tools/list is judged and pinned
        if message.is_response:
            return document  # an error, or an answer to something else: nothing to judge
        return self._scan(
            message, notification_texts(message), notification_keys(message), answers=False
        )

    def _scan(
        self,
        message: JsonRpcMessage,
        parts: list[TextPart],
        keys: list[TextPart],
        *,
        answers: bool,
    ) -> object | None:
        plan = self._response_plan
        if plan is None or not (parts or keys):
            return message.document
        what = "tool result" if self.method == TOOLS_CALL else "MCP answer"
        if not answers:
            what = "MCP server message"  # a notification or a server request: dropped
        key_hit = self._key_hit(keys, plan, "response")
        if key_hit is not None:
            reason = (
                f"{what} blocked by policy: rule '{key_hit.rule}' ({key_hit.scanner}) matched "
                f"an object key in {key_hit.where}, and a key cannot be rewritten"
            )
            return self._blocked(message, reason, answers=answers)
        verdict = judge_document(parts, plan, "response")
        self.findings.extend(verdict.findings)
        if verdict.blocked_by is not None:
            hit = verdict.blocked_by
            reason = (
                f"{what} blocked by policy: rule '{hit.rule}' ({hit.scanner}) "
                f"matched in {hit.where}"
            )
            return self._blocked(message, reason, answers=answers)
        if verdict.changed:
            return replace_values(message.document, verdict.replacements)
        return message.document

    def _blocked(self, message: JsonRpcMessage, reason: str, *, answers: bool) -> object | None:
        """The request's answer becomes an error for its id; a notification is dropped."""
        self.blocked = reason
        if not answers:
            return None
        data = {"rule": self.workload or "", "verdict": "block"}
        return error_document(message.id, REFUSED_BY_POLICY, f"weir: {reason}", data)

    def _filter_tools(self, message: JsonRpcMessage) -> object:
        rules, plan = self.rules, self._response_plan
        keep: list[object] = []
        changed = False
        result = message.result
        assert result is not None
        tools = result.get("tools")
        if not isinstance(tools, list):
            return message.document
        by_index = dict(listed_tools(message))
        for index, tool in enumerate(tools):
            definition = by_index.get(index)
            if definition is None:
                keep.append(tool)
                continue
            name = definition.get("name")
            name = name if isinstance(name, str) else ""
            if rules is not None and self.enforcing and not rules.allows_tool(name):
                self.withheld.append(f"{name}: not in tools")
                changed = True
                continue
            verdict = None
            key_hit = None
            if plan is not None:
                key_hit = self._key_hit(definition_keys(index, definition), plan, "response")
                verdict = judge_document(definition_texts(index, definition), plan, "response")
                self.findings.extend(verdict.findings)
            blocked = verdict is not None and verdict.blocked_by is not None
            poisoned = key_hit is not None or blocked
            hidden = self._pin(name, definition, poisoned=poisoned)
            if hidden is not None:
                self.withheld.append(f"{name}: {hidden}")
                changed = True
                continue
            if key_hit is not None:
                self.withheld.append(f"{name}: an object key matched ({key_hit.rule})")
                changed = True
                continue
            if verdict is not None:
                if verdict.blocked_by is not None:
                    hit = verdict.blocked_by
                    self.withheld.append(f"{name}: poisoned ({hit.rule})")
                    changed = True
                    continue
                if verdict.changed:
                    # Locators run from the message root: rewrite a one-tool document.
                    probe = {"result": {"tools": {index: definition}}}
                    rewritten = replace_values(probe, verdict.replacements)
                    assert isinstance(rewritten, dict)
                    keep.append(rewritten["result"]["tools"][index])
                    changed = True
                    continue
            keep.append(tool)
        if not changed:
            return message.document
        return {**message.document, "result": {**result, "tools": keep}}


class McpSseGuard:
    """An MCP answer streamed as SSE: each message released only once whole and judged."""

    def __init__(self, call: McpCall, max_event_bytes: int) -> None:
        self._call = call
        self._parser = SseParser(max_event_bytes=max_event_bytes)
        self.terminated = False
        self.failure: str | None = None

    @property
    def held_bytes(self) -> int:
        return self._parser.held_bytes

    def feed(self, chunk: bytes) -> bytes:
        if self.terminated:
            return b""
        try:
            events = self._parser.feed(chunk)
        except SseError as exc:
            return self.fail(f"unreadable MCP event stream: {exc}")
        return self._judge(events)

    def finish(self) -> bytes:
        if self.terminated:
            return b""
        try:
            events = self._parser.finish()
        except SseError as exc:
            return self.fail(f"unreadable MCP event stream: {exc}")
        return self._judge(events)

    def _judge(self, events: list[SseEvent]) -> bytes:
        out = bytearray()
        for event in events:
            if event.data is None or not event.data.strip():
                out += serialize(event)  # a priming event, a comment, a retry hint
                continue
            try:
                document = parse_response_json(event.data, "an MCP event")
                replaced = self._call.judge_server_document(document)
            except BadResponseBody as exc:
                return bytes(out) + self.fail(str(exc))
            if replaced is None:
                continue  # a notification a block rule matched: dropped
            if replaced is document:
                out += serialize(event)
                continue
            out += serialize(event.with_data(dump_message(replaced).decode("utf-8")))
            if isinstance(replaced, dict) and "error" in replaced and self._call.blocked:
                self.terminated = True  # the answer is replaced by an error: the stream is over
                break
        return bytes(out)

    def fail(self, reason: str) -> bytes:
        """Fail closed: the request's answer becomes an error event, and the stream ends."""
        self.terminated = True
        self.failure = reason
        request = self._call.message
        request_id = request.id if request is not None else None
        document = error_document(request_id, -32603, f"weir: {reason}")
        return serialize(SseEvent.build(dump_message(document).decode("utf-8"), event="message"))
