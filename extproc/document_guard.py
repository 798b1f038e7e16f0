"""Scanning a whole JSON document: a request body, or a response that is not streamed.

Every string of the document is scanned with the direction's plan, through the
same streaming state the token stream uses, fed in one piece, so redaction and
blocking mean exactly the same thing in both paths:

- the adapter's text parts (messages, tool results, output text ...), by locator;
- every other string value and object key (`extproc.llm.strings.sweep`): image and
  file URLs, tool descriptions, ``metadata``, ``user``, reasoning, annotations, error
  messages, fields no adapter knows. Only structural fields of a strict shape are
  exempt, and one of the wrong shape refuses the document;
- a string that is a JSON document (tool-call arguments, or any string that opens
  with ``{`` or ``[``) is read decoded, as the agent's ``json.loads`` will read it,
  and redacted in its source (`extproc.json_scan`);
- ``logprobs`` of a response are kept only when nothing in the document changed and
  their tokens, read joined, match no rule; otherwise they become ``null``.

The result says whether to block, and `DocumentVerdict.apply` gives the rewritten
body when something was redacted (a redacted key is renamed in place).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from extproc.audit import FindingRecord, match_hash
from extproc.json_scan import JsonTextScan
from extproc.llm.base import JsonPath, Locator, TextPart, dump_json, replace_values
from extproc.llm.strings import shown_key, sweep
from extproc.scan_plan import ScanPlan
from extproc.scanner import Finding
from mesh.policy import format_path
from mesh.verdicts import Action


@dataclass(frozen=True)
class DocumentVerdict:
    findings: tuple[FindingRecord, ...]
    blocked_by: FindingRecord | None
    replacements: Mapping[Locator, object]
    renamed_keys: Mapping[JsonPath, str] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.replacements) or bool(self.renamed_keys)

    def apply(self, document: object) -> bytes:
        """The document with every replacement made, as compact JSON."""
        rewritten = replace_values(document, self.replacements)
        for path, new_key in sorted(self.renamed_keys.items(), key=lambda item: -len(item[0])):
            rewritten = _rename(rewritten, path, new_key)
        return dump_json(rewritten)


class KeyCollision(ValueError):
    """A redacted key would replace a sibling key: the document cannot be rewritten."""


def all_clean(plan: ScanPlan, texts: Collection[str]) -> bool:
    """True when no rule matches any of `texts`, read in one scan, a line break apart.

    Object keys are many, short and mostly the same few field names: one scan of them
    all costs one scanner instead of one each. A line break is a neutral boundary for
    every rule, so a key that matches alone matches here too; on any finding (or a key
    with a line break of its own) the caller scans them one by one.
    """
    if not texts or any("\n" in text or "\r" in text for text in texts):
        return not texts
    stream = plan.stream()
    data = "\n".join(texts).encode("utf-8", "surrogatepass")
    return not stream.feed(data)[1] and not stream.finish()[1]


def locator_name(locator: Locator, flagged: Collection[str] = ()) -> str:
    """`("messages", 1, "content")` -> `messages[1].content`, for logs and messages.

    A key that is not a plain field name, or that matched a rule, shows as `*`.
    """
    return format_path(
        tuple(key if isinstance(key, int) else shown_key(key, flagged) for key in locator)
    )


def judge_document(
    parts: Sequence[TextPart],
    plan: ScanPlan,
    direction: str,
    *,
    document: object = None,
) -> DocumentVerdict:
    """Scan `parts` and, given the `document` they come from, every other string of it.

    StructureError (from the sweep) when a response's structural field has the wrong
    shape; in a request such a value is scanned instead.
    """
    judge = _Judge(plan, direction)
    for part in parts:
        if judge.scan(part.locator, part.text, json_text=part.json):
            return judge.verdict()
    if document is None:
        return judge.verdict()
    named = {part.locator for part in parts}
    response = direction == "response"
    swept = sweep(document, named, logprobs_apart=response, strict=response)
    keys = {found.text for found in swept.strings if found.key}
    clean_keys: set[str] = keys if all_clean(plan, keys) else set()
    for found in swept.strings:
        if found.key:
            if found.text in clean_keys:
                continue
            if judge.scan(found.path, found.text, key=True):
                return judge.verdict()
            if found.path not in judge.renamed:
                clean_keys.add(found.text)
        elif judge.scan(found.path, found.text, json_text=found.text[:1] in ("{", "[")):
            return judge.verdict()
    for path in swept.logprobs:
        if judge.replacements or judge.renamed or not judge.logprobs_clean(path, document):
            judge.replacements[path] = None
    return judge.verdict()


class _Judge:
    def __init__(self, plan: ScanPlan, direction: str) -> None:
        self.plan = plan
        self.direction = direction
        self._found: list[tuple[JsonPath, str, Finding, bool]] = []  # path, text, finding, key
        self.replacements: dict[Locator, object] = {}
        self.renamed: dict[JsonPath, str] = {}
        actions = plan.actions
        self._hidden = frozenset(
            k for k, v in actions.items() if v in (Action.BLOCK, Action.REDACT)
        )
        self._blocking = frozenset(k for k, v in actions.items() if v == Action.BLOCK)

    def verdict(self) -> DocumentVerdict:
        # Records are named at the end, when every key that matched a rule is known: a
        # path through such a key must not show it.
        flagged = {path[-1] for path, _, _, key in self._found if key and isinstance(path[-1], str)}
        records = [self._record(path, matched, finding, flagged)
                   for path, matched, finding, _ in self._found]
        blocked = next((r for r in records if r.action == Action.BLOCK), None)
        return DocumentVerdict(
            tuple(records), blocked,
            {} if blocked else self.replacements,
            {} if blocked else self.renamed,
        )

    def scan(
        self, path: JsonPath, text: str, *, json_text: bool = False, key: bool = False
    ) -> bool:
        """Scan one string; record its findings and its replacement. True on a block."""
        stream = JsonTextScan(self.plan.stream(), self._hidden, self._blocking) if json_text \
            else self.plan.stream()
        data = text.encode("utf-8", "surrogatepass")
        released, found = stream.feed(data)
        hits = [(path, stream.text_of(f), f, key) for f in found]
        tail, more = stream.finish()
        hits += [(path, stream.text_of(f), f, key) for f in more]
        for hit in hits:
            self._found.append(hit)
            if self.plan.action_for(hit[2]) == Action.BLOCK:
                return True
        new = (released + tail).decode("utf-8", "surrogatepass")
        if new != text:
            if key:
                self.renamed[path] = new
            else:
                self.replacements[path] = new
        return False

    def _record(
        self, path: JsonPath, matched: str, finding: Finding, flagged: Collection[str]
    ) -> FindingRecord:
        return FindingRecord(
            self.direction, locator_name(path, flagged), finding.scanner, finding.rule,
            self.plan.action_for(finding), finding.start, finding.end, match_hash(matched),
        )

    def logprobs_clean(self, path: JsonPath, document: object) -> bool:
        """Logprobs whose strings, and whose tokens read joined, match no rule."""
        value: object = document
        for step in path:
            value = value[step]  # type: ignore[index]
        if not _bytes_match(value):
            return False
        texts = [json.dumps(value)]
        texts += ["".join(tokens) for tokens in _token_lists(value)]
        for index, text in enumerate(texts):
            stream = JsonTextScan(self.plan.stream(), self._hidden, self._blocking) \
                if index == 0 else self.plan.stream()
            data = text.encode("utf-8", "surrogatepass")
            if stream.feed(data)[1] or stream.finish()[1]:
                return False
        return True


def _token_lists(value: object) -> list[list[str]]:
    found: list[list[str]] = []
    if isinstance(value, list):
        tokens = [entry.get("token") for entry in value if isinstance(entry, dict)]
        if tokens and all(isinstance(t, str) for t in tokens):
            found.append(tokens)  # type: ignore[arg-type]
        for entry in value:
            found += _token_lists(entry)
    elif isinstance(value, dict):
        for child in value.values():
            found += _token_lists(child)
    return found


def _bytes_match(value: object) -> bool:
    """Every ``bytes`` list under `value` is the UTF-8 of the ``token`` beside it."""
    if isinstance(value, dict):
        raw = value.get("bytes")
        if raw is not None:
            token = value.get("token")
            if not isinstance(token, str) or raw != list(token.encode("utf-8", "surrogatepass")):
                return False
        return all(_bytes_match(child) for child in value.values())
    if isinstance(value, list):
        return all(_bytes_match(child) for child in value)
    return True


def _rename(document: object, path: JsonPath, new_key: str) -> object:
    """A copy of `document` whose key at `path` (the object's path, then the key) is renamed."""
    *parents, old = path
    if not parents:
        return _renamed_in(document, old, new_key)
    head = parents[0]
    if isinstance(document, dict):
        copy: dict[str, object] = dict(document)
        copy[head] = _rename(document[head], (*parents[1:], old), new_key)  # type: ignore[index]
        return copy
    if isinstance(document, list):
        items = list(document)
        items[head] = _rename(document[head], (*parents[1:], old), new_key)  # type: ignore[index]
        return items
    raise KeyError("a renamed key's path does not fit the document")


def _renamed_in(node: object, old: str | int, new_key: str) -> object:
    if not isinstance(node, dict) or old not in node:
        raise KeyError("a renamed key's path does not fit the document")
    if new_key in node:
        raise KeyCollision("a redacted key would overwrite a sibling key")
    return {new_key if key == old else key: value for key, value in node.items()}
