"""Every string of a JSON document, found for the scanner; the structural fields it may skip.

Weir's promise is that no string leaves unscanned, wherever it sits: adapters name
the text fields they understand (so those keep their split-invariant channels), and
`sweep` finds every *other* string value and object key of a document. A field is
exempt only when it is structural: its key is in `STRUCTURAL` and its value fits that
key's strict shape (an id is a short token, `index` a non-negative integer, `role`
one of a few words). A structural key whose value does not fit raises
`StructureError`, and the caller fails closed: a string channel index, a float
`index`, free text in `finish_reason` are refused, not guessed at.

`logprobs` subtrees are reported apart (`Swept.logprobs`): they repeat the text of
their event token by token, so the response pipeline releases them only together
with that text (see `extproc.sse_guard`), never on their own.

Sans-I/O and pure: a document in, paths and strings out. Paths are concrete (list
positions); `channel_path` gives the normalised form that names a stream channel, so
one field of successive events (``choices[index=0].delta.x``) is one text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from extproc.llm.base import JsonPath

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_TYPE = re.compile(r"[a-z][a-z0-9_.]{0,79}")
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}")
_WORD = re.compile(r"[a-z][a-z_]{0,39}")
_FINGERPRINT = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PADDING = re.compile(r"[A-Za-z0-9+/=_-]{0,512}")


def _matches(pattern: re.Pattern[str], nullable: bool = False) -> Callable[[object], bool]:
    def check(value: object) -> bool:
        if value is None:
            return nullable
        return isinstance(value, str) and pattern.fullmatch(value) is not None

    return check


def _one_of(*words: str, nullable: bool = True) -> Callable[[object], bool]:
    allowed = frozenset(words)

    def check(value: object) -> bool:
        return (nullable and value is None) or (isinstance(value, str) and value in allowed)

    return check


def _count(value: object) -> bool:
    # bool is an int in Python, and a float index (1.0) is not an index: both refused.
    return type(value) is int and value >= 0


def _count_or_null(value: object) -> bool:
    return value is None or _count(value)


# key -> the shape its value must have. The same key means the same thing in the three
# APIs (and in their requests), so one table serves them all. Strings outside this table
# are scanned; keys outside it are scanned too.
STRUCTURAL: dict[str, Callable[[object], bool]] = {
    "id": _matches(_TOKEN),
    "item_id": _matches(_TOKEN),
    "call_id": _matches(_TOKEN),
    "tool_call_id": _matches(_TOKEN),
    "tool_use_id": _matches(_TOKEN),
    "previous_response_id": _matches(_TOKEN, nullable=True),
    "type": _matches(_TYPE),
    "object": _matches(_TYPE),
    "model": _matches(_MODEL),
    "role": _one_of("system", "developer", "user", "assistant", "tool", "function",
                    nullable=False),
    "finish_reason": _one_of("stop", "length", "tool_calls", "content_filter",
                             "function_call"),
    "stop_reason": _one_of("end_turn", "max_tokens", "stop_sequence", "tool_use",
                           "pause_turn", "refusal", "model_context_window_exceeded"),
    "status": _matches(_WORD, nullable=True),
    "service_tier": _matches(_WORD, nullable=True),
    "system_fingerprint": _matches(_FINGERPRINT, nullable=True),
    "obfuscation": _matches(_PADDING),
    "name": _matches(_NAME),
    "index": _count,
    "output_index": _count,
    "content_index": _count,
    "summary_index": _count,
    "sequence_number": _count,
    "created": _count,
    "created_at": _count_or_null,
}

# The key that names a list element's place in a stream, used to normalise paths.
INDEX_KEY = "index"
LOGPROBS = "logprobs"


class StructureError(ValueError):
    """A structural field whose value is outside its shape. Never quotes the value."""


@dataclass(frozen=True, slots=True)
class Found:
    """One string to scan: a value (`key` False) or an object key (`key` True).

    For a key, `path` is the path of the object that holds it plus the key itself.
    """

    path: JsonPath
    text: str
    channel_path: JsonPath
    key: bool = False


@dataclass(slots=True)
class Swept:
    strings: list[Found] = field(default_factory=list)
    logprobs: list[JsonPath] = field(default_factory=list)  # non-empty logprobs subtrees


def sweep(
    document: object,
    skip: Collection[JsonPath] = (),
    *,
    clean_keys: set[str] | None = None,
    logprobs_apart: bool = True,
    structural_ok: set[tuple[str, object]] | None = None,
    strict: bool = True,
) -> Swept:
    """Every string value and key of `document`, except those at `skip` and structural ones.

    `clean_keys` (a caller's memo of keys already scanned clean) leaves those keys out;
    `structural_ok` memoises shape checks already passed (a stream repeats the same id
    and model in every event). StructureError for a structural field of the wrong shape;
    not `strict` (a request, whose clients name things freely), such a value is not
    exempt but reported to be scanned like any other string.
    """
    out = Swept()
    _walk(document, (), (), frozenset(skip) if not isinstance(skip, (set, frozenset)) else skip,
          out, clean_keys, logprobs_apart, structural_ok, strict)
    return out


def check_structural(
    mapping: dict[str, object], structural_ok: set[tuple[str, object]] | None = None
) -> None:
    """Check the shapes of `mapping`'s own structural fields (not below): StructureError."""
    for key, value in mapping.items():
        check = STRUCTURAL.get(key)
        if check is None:
            continue
        memo = (key, value) if isinstance(value, (str, int)) else None
        if structural_ok is not None and memo is not None and memo in structural_ok:
            continue
        if not check(value):
            raise StructureError(
                f"structural field '{key}' has a value outside its shape ({type(value).__name__})"
            )
        if structural_ok is not None and memo is not None:
            structural_ok.add(memo)


def _walk(
    node: object,
    path: JsonPath,
    channel: JsonPath,
    skip: Collection[JsonPath],
    out: Swept,
    clean_keys: set[str] | None,
    logprobs_apart: bool,
    structural_ok: set[tuple[str, object]] | None,
    strict: bool = True,
) -> None:
    if isinstance(node, str):
        if path not in skip:
            out.strings.append(Found(path, node, channel))
        return
    if isinstance(node, dict):
        for key, value in node.items():
            if clean_keys is None or key not in clean_keys:
                out.strings.append(Found((*path, key), key, ("#key", *channel), key=True))
            check = STRUCTURAL.get(key)
            if check is not None:
                if structural_ok is not None:
                    memo = (key, value) if isinstance(value, (str, int)) else None
                    if memo is not None and memo in structural_ok:
                        continue
                if not check(value) and not strict:
                    if isinstance(value, (str, dict, list)):
                        _walk(value, (*path, key), (*channel, key), skip, out, clean_keys,
                              logprobs_apart, structural_ok, strict)
                    continue
                if not check(value):
                    where = ".".join(str(p) for p in (*path, key))
                    raise StructureError(
                        f"structural field '{where}' has a value outside its shape "
                        f"({type(value).__name__})"
                    )
                if structural_ok is not None and isinstance(value, (str, int)):
                    structural_ok.add((key, value))
                continue
            if key == LOGPROBS and logprobs_apart:
                if value:
                    out.logprobs.append((*path, key))
                continue
            if isinstance(value, (str, dict, list)):
                _walk(value, (*path, key), (*channel, key), skip, out, clean_keys,
                      logprobs_apart, structural_ok, strict)
        return
    if isinstance(node, list):
        for position, value in enumerate(node):
            if isinstance(value, (str, dict, list)):
                _walk(value, (*path, position), (*channel, _place(value)), skip, out,
                      clean_keys, logprobs_apart, structural_ok, strict)


def _place(element: object) -> str | int:
    """A list element's name in a channel: its own `index` when it has one, else `*`.

    Successive chunks number a choice or a tool call by `index`, not by position; any
    other list (annotations, logprobs tokens, summary parts) reads as one text in order.
    """
    if isinstance(element, dict):
        index = element.get(INDEX_KEY)
        if type(index) is int:
            return index
    return "*"


_FIELD_NAME = re.compile(r"[a-z_#=;.]{1,40}")


def shown_key(key: str | int, flagged: Collection[str] = ()) -> str:
    """A path component as logs and error messages may show it.

    API field names are short lowercase words; a key that is not one (it could be a
    secret, which a record must never quote) or that matched a rule shows as ``*``.
    """
    if isinstance(key, int):
        return str(key)
    return key if _FIELD_NAME.fullmatch(key) and key not in flagged else "*"


def strings_of(value: object) -> list[str]:
    """Every string value and key under `value`, in document order (no exemptions)."""
    found: list[str] = []
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            found.append(node)
        elif isinstance(node, dict):
            for key, child in reversed(list(node.items())):
                stack.append(child)
                stack.append(key)
        elif isinstance(node, list):
            stack.extend(reversed(node))
    return found
