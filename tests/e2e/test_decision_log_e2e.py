"""Every decision and audit line a real `weir serve` writes fits docs/decision-log.schema.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

import anthropic
import jsonschema
import openai
import pytest

from mesh.sandbox import MeshSandbox

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "docs" / "decision-log.schema.json").read_text()
)
LINE = re.compile(r"^\S+ \S+ (?:INFO|WARNING) (weir\.decision|weir\.audit) (\{.*\})$")
AWS_KEY = "AKIAQ3EGUKZW5XYT7M2P"


def validator(kind: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({**SCHEMA, "$ref": f"#/$defs/{kind}"})


def test_decision_and_audit_lines_from_real_traffic_match_the_schema(mesh: MeshSandbox) -> None:
    hello = [{"role": "user", "content": "echo: hello"}]
    checkout, notebook = mesh.openai_client("checkout"), mesh.openai_client("notebook")
    checkout.chat.completions.create(model="gpt-4o", messages=hello)
    list(checkout.chat.completions.create(
        model="gpt-4o", messages=hello, stream=True, stream_options={"include_usage": True}))
    with pytest.raises(openai.PermissionDeniedError):  # request rule: block
        checkout.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": f"key {AWS_KEY}"}])
    notebook.chat.completions.create(  # request rule: redact
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"echo: {AWS_KEY}"}])
    with pytest.raises(openai.PermissionDeniedError):  # no workload matches
        mesh.openai_client("etl").chat.completions.create(model="gpt-4o", messages=hello)
    with mesh.anthropic_client("checkout").messages.stream(
        model="claude-sonnet-4", max_tokens=50, messages=hello
    ) as stream:
        for _ in stream:
            pass
    with pytest.raises(anthropic.PermissionDeniedError):
        mesh.anthropic_client("checkout").messages.create(
            model="claude-opus-4", max_tokens=50, messages=hello)

    lines = [m.groups() for m in map(LINE.match, mesh.weir_log().splitlines()) if m]
    decisions = [json.loads(body) for kind, body in lines if kind == "weir.decision"]
    audits = [json.loads(body) for kind, body in lines if kind == "weir.audit"]
    verdicts = {d["verdict"] for d in decisions}
    assert {"allow", "deny"} <= verdicts and len(decisions) >= 7
    assert {a["action"] for a in audits} >= {"block", "redact"}
    for kind, entries in (("decision", decisions), ("audit", audits)):
        check = validator(kind)
        for entry in entries:
            errors = [f"{list(e.path)}: {e.message}" for e in check.iter_errors(entry)]
            assert not errors, (kind, entry, errors)
    assert AWS_KEY not in mesh.weir_log()
