"""What every provider adapter offers the exchange state machine.

An adapter knows one LLM API: how to recognise its requests, how to read the
fields policy cares about (model, stream) from a request body, and how that
provider spells an error, so that the official SDK raises its own typed error
when Weir refuses a call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Protocol


class ErrorKind(Enum):
    """The refusals Weir makes, each with the HTTP status the SDKs map to a typed error."""

    INVALID_REQUEST = 400
    PERMISSION_DENIED = 403
    NOT_FOUND = 404
    TOO_LARGE = 413
    UNAVAILABLE = 503

    @property
    def status(self) -> int:
        return self.value


@dataclass(frozen=True, slots=True)
class LlmRequest:
    model: str
    stream: bool


class BadRequestBody(ValueError):
    """The body cannot be judged: the reason is safe to show to the caller."""


# Python's json module recurses per nesting level; a hostile body of "[[[[..." would
# otherwise cost a RecursionError deep inside the parser. 128 is far beyond any real API body.
MAX_JSON_DEPTH = 128


def _json_depth_exceeds(text: str, limit: int) -> bool:
    depth = 0
    in_string = False
    escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


EMPTY_BODY_REASON = "request body is empty; a JSON object is required"


def parse_json_object(body: bytes) -> dict[str, object]:
    """Strict UTF-8 JSON object, or BadRequestBody naming what is wrong (never the content)."""
    if not body:
        raise BadRequestBody(EMPTY_BODY_REASON)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequestBody(f"request body is not valid UTF-8 (byte offset {exc.start})") from exc
    if _json_depth_exceeds(text, MAX_JSON_DEPTH):
        raise BadRequestBody(f"request body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequestBody(
            f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    if not isinstance(document, dict):
        raise BadRequestBody("request body must be a JSON object")
    return document


def read_model_and_stream(document: dict[str, object]) -> LlmRequest:
    model = document.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequestBody("'model' is required and must be a non-empty string")
    stream = document.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise BadRequestBody("'stream' must be a boolean")
    return LlmRequest(model=model, stream=stream)


class Provider(Protocol):
    name: str

    def matches(self, method: str, path: str) -> bool: ...

    def parse_request(self, body: bytes) -> LlmRequest: ...

    def error_body(self, kind: ErrorKind, message: str) -> bytes: ...
