"""istio/grafana/weir-dashboard.json asks only for metrics Weir exports, by labels they have."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import Counter, Gauge, Histogram

from extproc.metrics import Metrics

DASHBOARD = Path(__file__).resolve().parents[3] / "istio" / "grafana" / "weir-dashboard.json"
# PromQL words that are not metric names.
PROMQL = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
    "unless", "bool", "offset", "rate", "irate", "increase", "delta", "idelta", "deriv",
    "histogram_quantile", "label_values", "label_replace", "abs", "clamp_min", "clamp_max",
    "vector", "scalar", "time", "sum_over_time", "avg_over_time", "max_over_time", "absent",
    "le", "inf", "nan",
}
GRAFANA_VARIABLE = re.compile(r"\$\{?\w+\}?")
SELECTOR = re.compile(r"\b([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}")
MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"[^\"]*\"")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")


def exported() -> dict[str, set[str]]:
    """Each series name Weir's /metrics can show, with the labels it carries."""
    metrics = Metrics()
    series: dict[str, set[str]] = {}
    for collector in vars(metrics).values():
        if not isinstance(collector, Counter | Gauge | Histogram):
            continue
        name, labels = collector._name, set(collector._labelnames)
        if isinstance(collector, Counter):
            series[f"{name}_total"] = labels
        elif isinstance(collector, Histogram):
            series[f"{name}_bucket"] = labels | {"le"}
            series[f"{name}_sum"] = series[f"{name}_count"] = labels
        else:
            series[name] = labels
    return series


def queries(node: Any) -> list[tuple[str, str]]:
    """(panel title, expression) for every query in the dashboard, variables included."""
    found: list[tuple[str, str]] = []
    if isinstance(node, dict):
        for target in node.get("targets", []):
            found.append((node.get("title", "?"), target["expr"]))
        query = node.get("query")
        if isinstance(query, dict) and "query" in query:
            found.append((f"variable {node.get('name')}", query["query"]))
        for value in node.values():
            if isinstance(value, dict | list):
                found.extend(queries(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(queries(item))
    return found


def problems(expr: str, series: dict[str, set[str]]) -> list[str]:
    """What in one PromQL expression names a metric or a label Weir does not export."""
    found: list[str] = []
    text = GRAFANA_VARIABLE.sub("VAR", expr)
    used: set[str] = set()
    for metric, matchers in SELECTOR.findall(text):
        for label in MATCHER.findall(matchers):
            if label not in series.get(metric, set()):
                found.append(f"{metric} has no label {label!r}")
    grouping = [g.strip() for clause in GROUPING.findall(text) for g in clause.split(",")]
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", " ", GROUPING.sub(" ", text))
    bare = re.sub(r"label_values\(\s*(\w+)\s*,\s*\w+\s*\)", r"\1", bare)
    for word in re.findall(r"\b[a-zA-Z_:][\w:]*\b", bare):
        if word == "VAR" or word.lower() in PROMQL:
            continue
        if word not in series:
            found.append(f"{word} is not a metric Weir exports")
        used.add(word)
    # label_values(metric, label)
    for metric, label in re.findall(r"label_values\(\s*(\w+)\s*,\s*(\w+)\s*\)", text):
        if label not in series.get(metric, set()):
            found.append(f"{metric} has no label {label!r}")
    labels_in_scope = set().union(*(series.get(m, set()) for m in used)) if used else set()
    for label in filter(None, grouping):
        if label not in labels_in_scope:
            found.append(f"grouping by {label!r}, which none of {sorted(used)} has")
    return found


DASHBOARD_JSON = json.loads(DASHBOARD.read_text())
QUERIES = queries(DASHBOARD_JSON)


def test_the_dashboard_has_the_panels_the_operators_asked_for() -> None:
    titles = {panel["title"] for panel in DASHBOARD_JSON["panels"]}
    assert {
        "Calls by workload and decision", "Tokens by workload and model", "Findings by rule",
        "Blocked and redacted streams", "Time per message", "Hold-back", "Policy reloads",
    } <= titles
    assert len(QUERIES) >= 15


@pytest.mark.parametrize(("panel", "expr"), QUERIES, ids=[f"{p}: {e[:40]}" for p, e in QUERIES])
def test_every_query_names_only_exported_metrics_with_labels_they_have(
    panel: str, expr: str
) -> None:
    assert problems(expr, exported()) == []


@pytest.mark.parametrize(
    ("expr", "complaint"),
    [
        ("sum(rate(weir_request_total[5m]))", "weir_request_total is not a metric"),
        ('sum(rate(weir_tokens_total{user="x"}[5m]))', "no label 'user'"),
        ("sum by (namespace) (rate(weir_requests_total[5m]))", "grouping by 'namespace'"),
        ("histogram_quantile(0.9, sum by (le) (rate(weir_stream_held_bytes[5m])))",
         "weir_stream_held_bytes is not a metric"),
        ("label_values(weir_findings_total, workload)", "no label 'workload'"),
    ],
)
def test_the_check_catches_a_wrong_metric_or_label(expr: str, complaint: str) -> None:
    assert any(complaint in p for p in problems(expr, exported())), problems(expr, exported())
