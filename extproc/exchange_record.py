"""What one exchange did, for the decision log and the metrics, and the action that
publishes it.

`ExchangeRecord` is filled in by the request side, the response-body processor
(`extproc.response_body`) and the budget gate as the exchange goes. When the answer is
decided and handed to Envoy, the exchange returns `Publish` once, carrying the record;
the servicer (`extproc.server`) then writes the metrics, inventory, decision and audit
lines and telemetry. The state machine never publishes anything itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from extproc.audit import FindingRecord
from mesh.verdicts import Verdict


@dataclass(slots=True)
class ExchangeRecord:
    """What happened in one exchange, for the decision log and the metrics."""

    principal: str = ""
    identity_source: str | None = None
    # The end user: a keyed hash of issuer and subject (`subject_hash`), never the token.
    user: str | None = None
    # Why a presented token was refused ("user:expired", "svid:kid", ...), a fixed word.
    token_rejection: str | None = None
    identity_detail: str = ""
    workload: str | None = None
    method: str = ""
    path: str = ""
    # The request's host (no port) and path normal form (`extproc.request_path`).
    authority: str = ""
    api_path: str = ""
    ai_host: bool = False  # a known AI provider host (built-in list or policy aiHosts)
    # How the call was recognised as an LLM call: "path", "body" (its shape), or None.
    recognised_by: str | None = None
    provider: str | None = None
    model: str | None = None
    stream: bool | None = None
    verdict: Verdict = Verdict.PENDING  # see mesh.verdicts for what each one means
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
    # An MCP call (extproc.mcp): the server (its authority), the method and the tool.
    mcp_server: str | None = None
    mcp_method: str | None = None
    tool_name: str | None = None
    # What the answer says of itself, for telemetry: never content (extproc.llm.response_facts).
    response_model: str | None = None
    finish_reasons: list[str] = field(default_factory=list)
    # The token budget (`extproc.budget_gate`): reserved | refused | ended | unavailable
    # (the store did not answer; onUnavailable decided), or None when unmetered.
    budget: str | None = None
    started: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class Publish:
    """The record is final: publish it now, before the actions returned with it go out.

    An SDK that reads the answer's own end (`[DONE]`, `message_stop`) may hang up before
    Envoy's end of stream ever reaches Weir, so the record goes when the answer is
    complete, not when the gRPC stream closes.
    """

    record: ExchangeRecord
