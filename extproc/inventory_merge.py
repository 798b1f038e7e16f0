"""One inventory for the cluster: the replicas' `/inventory` documents merged into one.

With `--redis`, each replica publishes its own snapshot (`Inventory.snapshot`) to the
shared store under its replica id; `/inventory` on any replica merges every replica's
latest document, so all of them return the same cluster view. Counts add up, sets
unite, first/last seen take the earliest and latest. A replica that stopped keeps its
last document: what it saw still happened.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from extproc.inventory import MAX_USERS_PER_IDENTITY

_WORKLOAD_SETS = ("policyWorkloads", "providers", "models", "deniedModels")
_AUTHORITY_SETS = ("identities", "providers", "models")


def merge_snapshots(documents: Iterable[Mapping[str, Any]]) -> dict[str, object]:
    workloads: dict[str, dict[str, Any]] = {}
    authorities: dict[str, dict[str, Any]] = {}
    for document in documents:
        for entry in document.get("workloads", []):
            _merge_workload(workloads, entry)
        for entry in document.get("authorities", []):
            _merge_authority(authorities, entry)
    return {
        "generatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "workloads": [_finish_workload(workloads[k]) for k in sorted(workloads)],
        "authorities": [_finish_authority(authorities[k]) for k in sorted(authorities)],
    }


def _add_counts(into: dict[str, int], more: Mapping[str, int]) -> None:
    for key, count in more.items():
        into[key] = into.get(key, 0) + int(count)


def _seen(merged: dict[str, Any], entry: Mapping[str, Any]) -> None:
    merged["firstSeen"] = min(merged["firstSeen"], entry["firstSeen"])
    merged["lastSeen"] = max(merged["lastSeen"], entry["lastSeen"])


def _merge_workload(into: dict[str, dict[str, Any]], entry: Mapping[str, Any]) -> None:
    key = entry["identity"]
    merged = into.get(key)
    if merged is None:
        merged = into[key] = {
            "identity": key,
            "namespace": entry.get("namespace"),
            "serviceAccount": entry.get("serviceAccount"),
            **{name: set() for name in _WORKLOAD_SETS},
            "endUsers": set(),
            "requests": 0,
            "tokens": {"input": 0, "output": 0},
            "decisions": {},
            "findings": {},
            "routes": {},
            "mcp": {},
            "firstSeen": entry["firstSeen"],
            "lastSeen": entry["lastSeen"],
        }
    for name in _WORKLOAD_SETS:
        merged[name].update(entry.get(name, []))
    merged["endUsers"].update(entry.get("endUsers", []))
    merged["requests"] += entry.get("requests", 0)
    tokens = entry.get("tokens", {})
    merged["tokens"]["input"] += tokens.get("input", 0)
    merged["tokens"]["output"] += tokens.get("output", 0)
    _add_counts(merged["decisions"], entry.get("decisions", {}))
    _add_counts(merged["findings"], entry.get("findings", {}))
    for route in entry.get("routes", []):
        rkey = (route["provider"], route.get("model") or "")
        have = merged["routes"].setdefault(rkey, {"calls": 0, "input": 0, "output": 0})
        have["calls"] += route.get("calls", 0)
        have["input"] += route.get("tokens", {}).get("input", 0)
        have["output"] += route.get("tokens", {}).get("output", 0)
    for use in entry.get("mcp", []):
        mkey = (use["mcpServer"], use.get("tool"))
        mcp = merged["mcp"].get(mkey)
        if mcp is None:
            mcp = merged["mcp"][mkey] = {"calls": 0, "decisions": {},
                                         "firstSeen": use["firstSeen"], "lastSeen": use["lastSeen"]}
        mcp["calls"] += use.get("calls", 0)
        _add_counts(mcp["decisions"], use.get("decisions", {}))
        _seen(mcp, use)
    _seen(merged, entry)


def _finish_workload(merged: dict[str, Any]) -> dict[str, object]:
    return {
        "identity": merged["identity"],
        "namespace": merged["namespace"],
        "serviceAccount": merged["serviceAccount"],
        **{name: sorted(merged[name]) for name in _WORKLOAD_SETS},
        "requests": merged["requests"],
        "tokens": merged["tokens"],
        "decisions": dict(sorted(merged["decisions"].items())),
        "findings": dict(sorted(merged["findings"].items())),
        "endUsers": sorted(merged["endUsers"])[:MAX_USERS_PER_IDENTITY],
        "routes": [
            {
                "provider": provider,
                "model": model or None,
                "calls": volume["calls"],
                "tokens": {"input": volume["input"], "output": volume["output"]},
            }
            for (provider, model), volume in sorted(merged["routes"].items())
        ],
        "mcp": [
            {
                "mcpServer": server,
                "tool": tool,
                "calls": use["calls"],
                "decisions": dict(sorted(use["decisions"].items())),
                "firstSeen": use["firstSeen"],
                "lastSeen": use["lastSeen"],
            }
            for (server, tool), use in sorted(
                merged["mcp"].items(), key=lambda item: (item[0][0], item[0][1] or "")
            )
        ],
        "firstSeen": merged["firstSeen"],
        "lastSeen": merged["lastSeen"],
    }


def _merge_authority(into: dict[str, dict[str, Any]], entry: Mapping[str, Any]) -> None:
    key = entry["authority"]
    merged = into.get(key)
    if merged is None:
        merged = into[key] = {
            "authority": key,
            "knownAiHost": bool(entry.get("knownAiHost")),
            **{name: set() for name in _AUTHORITY_SETS},
            "requests": 0,
            "recognisedBy": {},
            "decisions": {},
            "firstSeen": entry["firstSeen"],
            "lastSeen": entry["lastSeen"],
        }
    # Replicas may run different policies mid-reload: known to one is known.
    merged["knownAiHost"] = merged["knownAiHost"] or bool(entry.get("knownAiHost"))
    for name in _AUTHORITY_SETS:
        merged[name].update(entry.get(name, []))
    merged["requests"] += entry.get("requests", 0)
    _add_counts(merged["recognisedBy"], entry.get("recognisedBy", {}))
    _add_counts(merged["decisions"], entry.get("decisions", {}))
    _seen(merged, entry)


def _finish_authority(merged: dict[str, Any]) -> dict[str, object]:
    return {
        "authority": merged["authority"],
        "knownAiHost": merged["knownAiHost"],
        "shadow": not merged["knownAiHost"],
        **{name: sorted(merged[name]) for name in _AUTHORITY_SETS},
        "requests": merged["requests"],
        "recognisedBy": dict(sorted(merged["recognisedBy"].items())),
        "decisions": dict(sorted(merged["decisions"].items())),
        "firstSeen": merged["firstSeen"],
        "lastSeen": merged["lastSeen"],
    }
