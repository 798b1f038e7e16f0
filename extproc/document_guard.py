"""Scanning a whole JSON document: a request body, or a response that is not streamed.

The adapter lists the document's text parts; each part is scanned with the
direction's plan through the same streaming state the token stream uses, fed
in one piece, so redaction and blocking mean exactly the same thing in both
paths. The result says whether to block, and gives the rewritten body when
something was redacted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from extproc.audit import FindingRecord, match_hash
from extproc.llm.base import Locator, TextPart
from extproc.scan_plan import ScanPlan
from mesh.policy import format_path
from mesh.verdicts import Action


@dataclass(frozen=True)
class DocumentVerdict:
    findings: tuple[FindingRecord, ...]
    blocked_by: FindingRecord | None
    replacements: Mapping[Locator, str]

    @property
    def changed(self) -> bool:
        return bool(self.replacements)

def judge_document(
    parts: Sequence[TextPart], plan: ScanPlan, direction: str
) -> DocumentVerdict:
    findings: list[FindingRecord] = []
    replacements: dict[Locator, str] = {}
    for part in parts:
        stream = plan.stream()
        released, found = stream.feed(part.text.encode("utf-8", "surrogatepass"))
        tail, more = stream.finish()
        where = format_path(part.locator)
        for finding in (*found, *more):
            record = FindingRecord(
                direction, where, finding.scanner, finding.rule, plan.action_for(finding),
                finding.start, finding.end, match_hash(part.text[finding.start : finding.end]),
            )
            findings.append(record)
            if record.action == Action.BLOCK:
                return DocumentVerdict(tuple(findings), record, {})
        text = (released + tail).decode("utf-8", "surrogatepass")
        if text != part.text:
            replacements[part.locator] = text
    return DocumentVerdict(tuple(findings), None, replacements)
