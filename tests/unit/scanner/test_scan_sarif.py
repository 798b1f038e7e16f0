"""`weir scan --format sarif`: a SARIF 2.1.0 log that validates against the vendored schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from extproc.scanner.cli import main
from extproc.scanner.scan_report import SARIF_FINGERPRINT

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "data" / "sarif" / "sarif-2.1.0-rtm.5.json").read_text()
)
KEY = "AKIAQ3EGUKZW5XYT7M2P"


def _validate(log: object) -> None:
    jsonschema.Draft4Validator.check_schema(SCHEMA)
    jsonschema.Draft4Validator(SCHEMA).validate(log)


def test_a_log_with_findings_warnings_and_errors_validates_against_sarif_2_1_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("src").mkdir()
    Path("src/config file.py").write_text(f"# é\nAWS = '{KEY}'\ncard 4111-1111-1111-1111\n")
    Path("src/blob.bin").write_bytes(b"\xff\x00" + KEY.encode())
    assert main(["--format", "sarif", "src", "missing.txt"]) == 2
    log = json.loads(capsys.readouterr().out)
    _validate(log)
    [run] = log["runs"]
    rules = run["tool"]["driver"]["rules"]
    results = run["results"]
    assert [(r["ruleId"], rules[r["ruleIndex"]]["id"]) for r in results] == [
        ("aws-access-key-id", "aws-access-key-id"),
        ("aws-access-key-id", "aws-access-key-id"),
        ("payment-card", "payment-card"),
    ]
    locations = [r["locations"][0]["physicalLocation"] for r in results]
    assert [loc["artifactLocation"]["uri"] for loc in locations] == [
        "src/blob.bin", "src/config%20file.py", "src/config%20file.py"
    ]  # fmt: skip
    assert locations[1]["region"] == {
        "startLine": 2, "startColumn": 8, "endLine": 2, "endColumn": 28,
        "byteOffset": 12, "byteLength": 20,
    }  # fmt: skip
    assert run["columnKind"] == "unicodeCodePoints"
    assert all(r["partialFingerprints"][SARIF_FINGERPRINT].startswith("hmac") for r in results)
    [invocation] = run["invocations"]
    assert invocation["executionSuccessful"] is False
    notes = [n["message"]["text"] for n in invocation["toolExecutionNotifications"]]
    assert any("not valid UTF-8" in n for n in notes) and any("cannot read" in n for n in notes)
    assert KEY not in json.dumps(log)


def test_a_clean_log_validates_and_has_no_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "ok.txt").write_text("nothing here\n")
    assert main(["--format", "sarif", str(tmp_path)]) == 0
    log = json.loads(capsys.readouterr().out)
    _validate(log)
    assert log["runs"][0]["results"] == []
    assert log["runs"][0]["invocations"][0]["executionSuccessful"] is True


def test_the_schema_rejects_what_code_scanning_would_reject(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "k.txt").write_text(KEY)
    main(["--format", "sarif", str(tmp_path)])
    log = json.loads(capsys.readouterr().out)
    del log["runs"][0]["results"][0]["message"]
    with pytest.raises(jsonschema.ValidationError):
        _validate(log)
