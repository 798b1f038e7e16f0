"""How `weir scan` writes its findings: JSON lines, text, or SARIF 2.1.0, as they come.

Owns the three output formats and the baseline file they can be read back as.
Every writer takes findings one at a time and writes each at once, so output
memory does not grow with the number of findings; SARIF is written as one
JSON document whose `results` array is streamed, element by element.

No format carries the matched text: a finding is its file, line, column,
byte offset, scanner, rule and keyed hash (see `file_scan`).

A baseline is an earlier report, JSON lines or SARIF, from a run with the
same hash key (`WEIR_AUDIT_SALT`): findings whose rule and hash it lists are
left out, as gitleaks' `--baseline-path` does.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Sequence
from typing import Protocol, TextIO

from .file_scan import LocatedFinding
from .rules import Rule

FORMATS = ("jsonl", "text", "sarif")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_FINGERPRINT = "weirMatchHash/v1"


class Writer(Protocol):
    def finding(self, name: str, f: LocatedFinding) -> None: ...
    def warning(self, name: str, message: str) -> None: ...
    def close(self, succeeded: bool) -> None: ...


def _as_dict(name: str, f: LocatedFinding) -> dict[str, object]:
    return {
        "file": name,
        "line": f.line,
        "column": f.column,
        "end_line": f.end_line,
        "end_column": f.end_column,
        "byte_offset": f.byte_offset,
        "byte_length": f.byte_length,
        "start": f.start,
        "end": f.end,
        "scanner": f.scanner,
        "rule": f.rule,
        "hash": f.hash,
    }


class JsonLinesWriter:
    """One JSON object per finding per line."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def finding(self, name: str, f: LocatedFinding) -> None:
        self._out.write(json.dumps(_as_dict(name, f)) + "\n")

    def warning(self, name: str, message: str) -> None:
        pass  # warnings go to stderr; stdout stays one finding per line

    def close(self, succeeded: bool) -> None:
        self._out.flush()


class TextWriter:
    """`file:line:column: scanner/rule hash`, the shape editors and terminals link."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def finding(self, name: str, f: LocatedFinding) -> None:
        self._out.write(f"{name}:{f.line}:{f.column}: {f.scanner}/{f.rule} {f.hash}\n")

    def warning(self, name: str, message: str) -> None:
        pass

    def close(self, succeeded: bool) -> None:
        self._out.flush()


def artifact_uri(name: str) -> str:
    """A SARIF artifact URI: relative paths stay relative (GitHub resolves them
    against the repository), absolute ones become file: URIs."""
    if name == "<stdin>":
        return "stdin"
    path = name.replace(os.sep, "/")
    if os.path.isabs(name):
        return "file://" + urllib.parse.quote(path)
    return urllib.parse.quote(path.removeprefix("./"))


class SarifWriter:
    """A SARIF 2.1.0 log with one run; `results` is streamed."""

    def __init__(self, out: TextIO, rules: Sequence[Rule], version: str) -> None:
        self._out = out
        self._index = {r.id: i for i, r in enumerate(rules)}
        self._notes: list[dict[str, object]] = []
        self._first = True
        driver = {
            "name": "weir",
            "semanticVersion": version,
            "rules": [
                {
                    "id": r.id,
                    "name": r.id,
                    "shortDescription": {"text": r.description or f"{r.scanner}: {r.id}"},
                    "defaultConfiguration": {"level": "error"},
                    "properties": {"tags": ["security", r.scanner]},
                }
                for r in rules
            ],
        }
        head = json.dumps(
            {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [{"tool": {"driver": driver}}]}
        )
        # Everything up to the run's closing braces, then the streamed results.
        self._out.write(head[: -len("}]}")] + ', "columnKind": "unicodeCodePoints", "results": [')

    def finding(self, name: str, f: LocatedFinding) -> None:
        region = {
            "startLine": f.line,
            "startColumn": f.column,
            "endLine": f.end_line,
            "endColumn": f.end_column,
            "byteOffset": f.byte_offset,
            "byteLength": f.byte_length,
        }
        result = {
            "ruleId": f.rule,
            "ruleIndex": self._index[f.rule],
            "level": "error",
            "message": {"text": f"{f.scanner}: {f.rule} (the match is not shown; {f.hash})"},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": artifact_uri(name)},
                        "region": region,
                    }
                }
            ],
            "partialFingerprints": {SARIF_FINGERPRINT: f.hash},
        }
        self._out.write(("" if self._first else ",") + "\n" + json.dumps(result))
        self._first = False

    def warning(self, name: str, message: str) -> None:
        self._notes.append(
            {
                "level": "warning",
                "message": {"text": message},
                "locations": [
                    {"physicalLocation": {"artifactLocation": {"uri": artifact_uri(name)}}}
                ],
            }
        )

    def close(self, succeeded: bool) -> None:
        invocation = {"executionSuccessful": succeeded, "toolExecutionNotifications": self._notes}
        self._out.write("\n], " + json.dumps({"invocations": [invocation]})[1:-1] + "}]}\n")
        self._out.flush()


def make_writer(fmt: str, out: TextIO, rules: Sequence[Rule], version: str) -> Writer:
    if fmt == "jsonl":
        return JsonLinesWriter(out)
    if fmt == "text":
        return TextWriter(out)
    if fmt == "sarif":
        return SarifWriter(out, rules, version)
    raise ValueError(f"unknown format {fmt!r}")


class BaselineError(Exception):
    pass


def load_baseline(path: str) -> frozenset[tuple[str, str]]:
    """The (rule, hash) pairs of an earlier `weir scan` report, JSON lines or SARIF."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise BaselineError(f"cannot read baseline {path}: {reason}") from None
    stripped = text.lstrip()
    known: set[tuple[str, str]] = set()
    if stripped.startswith("{") and '"runs"' in stripped[:4096]:
        try:
            log = json.loads(text)
            for run in log["runs"]:
                for result in run.get("results", []):
                    known.add((result["ruleId"], result["partialFingerprints"][SARIF_FINGERPRINT]))
            return frozenset(known)
        except (ValueError, KeyError, TypeError):
            pass  # not SARIF after all: try it as JSON lines
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            known.add((str(entry["rule"]), str(entry["hash"])))
        except (ValueError, KeyError, TypeError):
            raise BaselineError(
                f"{path}:{number}: not a finding of `weir scan --format jsonl` or a SARIF log "
                "from `weir scan --format sarif`"
            ) from None
    return frozenset(known)
