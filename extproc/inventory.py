"""Where AI runs: every workload identity seen, with its providers, models and volumes.

Served as JSON on the admin port (`/inventory`) and drawn by the page at `/`
(`extproc.inventory_page`). In memory, per process: each Weir replica reports
what it saw since it started. Each workload carries its `routes`, one per
(provider, model) it called, with the calls and tokens of that route, which
the page draws as weighted edges.

``authorities`` lists the hosts AI calls went to: every LLM call (recognised by
its path or by its body's shape) and every call to a known AI host, with who
called and how it was recognised. A host that is not a known AI host yet
carries LLM calls is shadow AI: a provider no rule names.

Each workload's ``mcp`` lists the MCP servers (by authority) and tools it used,
one entry per (server, tool), with calls, decisions and first and last seen; the
tool is null for methods that name none (`initialize`, `tools/list` ...).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from extproc.stream import ExchangeRecord
from mesh.spiffe import SpiffeIdError, parse_spiffe_id


@dataclass
class _Volume:
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class _McpUse:
    first_seen: float
    last_seen: float
    calls: int = 0
    decisions: Counter[str] = field(default_factory=Counter)


# Distinct (MCP server, tool) pairs remembered per identity, bounded like the users.
MAX_MCP_TOOLS_PER_IDENTITY = 1000


@dataclass
class _Entry:
    principal: str
    namespace: str | None
    service_account: str | None
    first_seen: float
    last_seen: float
    workloads: set[str] = field(default_factory=set)
    providers: set[str] = field(default_factory=set)
    models: set[str] = field(default_factory=set)
    denied_models: set[str] = field(default_factory=set)
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    findings: Counter[str] = field(default_factory=Counter)
    users: set[str] = field(default_factory=set)  # keyed hashes of end users, never subjects
    routes: dict[tuple[str, str], _Volume] = field(default_factory=dict)
    # MCP: (server, tool) -> calls; the tool is None for methods that name none.
    mcp: dict[tuple[str, str | None], _McpUse] = field(default_factory=dict)


# Distinct end users remembered per identity: enough to see who uses it, bounded.
MAX_USERS_PER_IDENTITY = 1000


@dataclass
class _Authority:
    authority: str
    ai_host: bool
    first_seen: float
    last_seen: float
    identities: set[str] = field(default_factory=set)
    providers: set[str] = field(default_factory=set)
    models: set[str] = field(default_factory=set)
    requests: int = 0
    recognised_by: Counter[str] = field(default_factory=Counter)
    decisions: Counter[str] = field(default_factory=Counter)


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


class Inventory:
    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._authorities: dict[str, _Authority] = {}

    def observe(self, record: ExchangeRecord) -> None:
        if not record.principal:
            return
        now = time.time()
        entry = self._entries.get(record.principal)
        if entry is None:
            namespace = service_account = None
            try:
                sid = parse_spiffe_id(record.principal)
                namespace, service_account = sid.namespace, sid.service_account
            except SpiffeIdError:
                pass  # "unauthenticated": no namespace to report
            entry = _Entry(record.principal, namespace, service_account, now, now)
            self._entries[record.principal] = entry
        entry.last_seen = now
        entry.requests += 1
        entry.decisions[str(record.verdict)] += 1
        if record.workload:
            entry.workloads.add(record.workload)
        if record.provider:
            entry.providers.add(record.provider)
        if record.model:
            # A refused call never reached a model: it was asked for, not used.
            (entry.denied_models if record.verdict == "deny" else entry.models).add(record.model)
        if record.user and len(entry.users) < MAX_USERS_PER_IDENTITY:
            entry.users.add(record.user)
        entry.input_tokens += record.input_tokens or 0
        entry.output_tokens += record.output_tokens or 0
        if record.provider:
            route = entry.routes.setdefault((record.provider, record.model or ""), _Volume())
            route.calls += 1
            route.input_tokens += record.input_tokens or 0
            route.output_tokens += record.output_tokens or 0
        for finding in record.findings:
            entry.findings[f"{finding.scanner}/{finding.rule}/{finding.action}"] += 1
        if record.mcp_method is not None:
            self._observe_mcp(entry, record, now)
            return  # an MCP server is no AI host: it is not listed under authorities
        self._observe_authority(record, now)

    def _observe_mcp(self, entry: _Entry, record: ExchangeRecord, now: float) -> None:
        key = (record.mcp_server or "(unknown)", record.tool_name)
        use = entry.mcp.get(key)
        if use is None:
            if len(entry.mcp) >= MAX_MCP_TOOLS_PER_IDENTITY:
                return
            use = entry.mcp[key] = _McpUse(now, now)
        use.last_seen = now
        use.calls += 1
        use.decisions[str(record.verdict)] += 1

    def _observe_authority(self, record: ExchangeRecord, now: float) -> None:
        if record.recognised_by is None and not record.ai_host:
            return  # ordinary traffic: not part of where AI runs
        if record.recognised_by and record.recognised_by.startswith("mcp"):
            return  # an MCP session's GET stream or DELETE: no AI host either
        key = record.authority or "(none)"
        entry = self._authorities.get(key)
        if entry is None:
            entry = _Authority(key, record.ai_host, now, now)
            self._authorities[key] = entry
        entry.last_seen = now
        entry.requests += 1
        entry.identities.add(record.principal)
        entry.recognised_by[record.recognised_by or "host"] += 1
        entry.decisions[record.verdict] += 1
        if record.provider:
            entry.providers.add(record.provider)
        if record.model:
            entry.models.add(record.model)

    def snapshot(self) -> dict[str, object]:
        return {
            "generatedAt": _iso(time.time()),
            "workloads": [
                {
                    "identity": e.principal,
                    "namespace": e.namespace,
                    "serviceAccount": e.service_account,
                    "policyWorkloads": sorted(e.workloads),
                    "providers": sorted(e.providers),
                    "models": sorted(e.models),
                    "deniedModels": sorted(e.denied_models),
                    "requests": e.requests,
                    "tokens": {"input": e.input_tokens, "output": e.output_tokens},
                    "decisions": dict(sorted(e.decisions.items())),
                    "findings": dict(sorted(e.findings.items())),
                    "endUsers": sorted(e.users),
                    "routes": [
                        {
                            "provider": provider,
                            "model": model or None,
                            "calls": volume.calls,
                            "tokens": {
                                "input": volume.input_tokens,
                                "output": volume.output_tokens,
                            },
                        }
                        for (provider, model), volume in sorted(e.routes.items())
                    ],
                    # Drawn by the page as its third column (MCP servers and tools).
                    "mcp": [
                        {
                            "mcpServer": server,
                            "tool": tool,
                            "calls": use.calls,
                            "decisions": dict(sorted(use.decisions.items())),
                            "firstSeen": _iso(use.first_seen),
                            "lastSeen": _iso(use.last_seen),
                        }
                        for (server, tool), use in sorted(
                            e.mcp.items(), key=lambda item: (item[0][0], item[0][1] or "")
                        )
                    ],
                    "firstSeen": _iso(e.first_seen),
                    "lastSeen": _iso(e.last_seen),
                }
                for e in sorted(self._entries.values(), key=lambda e: e.principal)
            ],
            "authorities": [
                {
                    "authority": a.authority,
                    "knownAiHost": a.ai_host,
                    # LLM calls to a host no list names: a provider nobody declared.
                    "shadow": not a.ai_host,
                    "identities": sorted(a.identities),
                    "providers": sorted(a.providers),
                    "models": sorted(a.models),
                    "requests": a.requests,
                    "recognisedBy": dict(sorted(a.recognised_by.items())),
                    "decisions": dict(sorted(a.decisions.items())),
                    "firstSeen": _iso(a.first_seen),
                    "lastSeen": _iso(a.last_seen),
                }
                for a in sorted(self._authorities.values(), key=lambda a: a.authority)
            ],
        }
