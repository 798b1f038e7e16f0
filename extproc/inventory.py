"""Where AI runs: every workload identity seen, with its providers, models and volumes.

Served as JSON on the admin port (`/inventory`). In memory, per process:
each Weir replica reports what it saw since it started.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from extproc.stream import ExchangeRecord
from mesh.spiffe import SpiffeIdError, parse_spiffe_id


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


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


class Inventory:
    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

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
        entry.decisions[record.verdict] += 1
        if record.workload:
            entry.workloads.add(record.workload)
        if record.provider:
            entry.providers.add(record.provider)
        if record.model:
            # A refused call never reached a model: it was asked for, not used.
            (entry.denied_models if record.verdict == "deny" else entry.models).add(record.model)
        entry.input_tokens += record.input_tokens or 0
        entry.output_tokens += record.output_tokens or 0
        for finding in record.findings:
            entry.findings[f"{finding.scanner}/{finding.rule}/{finding.action}"] += 1

    def snapshot(self) -> dict[str, object]:
        return {
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
                    "firstSeen": _iso(e.first_seen),
                    "lastSeen": _iso(e.last_seen),
                }
                for e in sorted(self._entries.values(), key=lambda e: e.principal)
            ]
        }
