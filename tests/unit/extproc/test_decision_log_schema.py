"""The decision-log schema is a valid JSON Schema and refuses lines that break its promises."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[3] / "docs" / "decision-log.schema.json").read_text()
)
DECISION: dict[str, Any] = {
    "principal": "spiffe://cluster.local/ns/payments/sa/checkout",
    "identity_source": "peer-certificate", "identity_detail": "peer-certificate: accepted",
    "workload": "payments-checkout", "method": "POST", "path": "/v1/chat/completions",
    "provider": "openai.chat_completions", "model": "gpt-4o", "stream": False,
    "verdict": "allow", "rule": "payments-checkout", "reason": "allowed", "status": 200,
    "policy_digest": "356fc7e19c9d", "request_bytes": 62, "response_bytes": 431,
    "input_tokens": 1, "output_tokens": 12, "findings": 0, "held_bytes_max": 0,
    "duration_ms": 17.9,
}
AUDIT: dict[str, Any] = {
    "time": "2026-12-01T13:05:49Z", "identity": DECISION["principal"],
    "workload": "payments-checkout", "provider": "openai.chat_completions", "model": "gpt-4o",
    "direction": "request", "where": "messages[0].content", "scanner": "secrets",
    "rule": "aws-access-key-id", "action": "block", "span": [7, 27],
    "matchHash": "hmac-sha256:" + "0" * 32,
}


def valid(kind: str, entry: dict[str, Any]) -> bool:
    return jsonschema.Draft202012Validator({**SCHEMA, "$ref": f"#/$defs/{kind}"}).is_valid(entry)


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_well_formed_lines_pass_and_fields_added_later_are_tolerated() -> None:
    assert valid("decision", DECISION) and valid("audit", AUDIT)
    assert valid("decision", {**DECISION, "user_hash": "hmac-sha256:abcd", "authority": "x"})


@pytest.mark.parametrize(
    ("kind", "change"),
    [
        ("decision", {"verdict": "maybe"}),
        ("decision", {"input_tokens": -1}),
        ("decision", {"prompt": "hello"}),
        ("audit", {"action": "ignore"}),
        ("audit", {"span": [1]}),
        ("audit", {"matchHash": "AKIAQ3EGUKZW5XYT7M2P"}),
        ("audit", {"match": "AKIAQ3EGUKZW5XYT7M2P"}),
    ],
    ids=["bad-verdict", "negative-tokens", "a-prompt", "bad-action", "short-span",
         "raw-hash", "matched-text"],
)
def test_a_line_that_breaks_the_schema_is_refused(kind: str, change: dict[str, Any]) -> None:
    base = DECISION if kind == "decision" else AUDIT
    assert not valid(kind, {**base, **change})


def test_a_line_missing_a_required_field_is_refused() -> None:
    for field in ("verdict", "principal", "duration_ms"):
        assert not valid("decision", {k: v for k, v in DECISION.items() if k != field})
    assert not valid("audit", {k: v for k, v in AUDIT.items() if k != "matchHash"})
