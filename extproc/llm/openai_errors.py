"""OpenAI's error object, shared by its chat completions and responses APIs."""

from __future__ import annotations

import json

from extproc.llm.base import ErrorKind

# The `type` strings OpenAI uses in its error objects; the SDK picks its exception
# class from the HTTP status, the type is for humans and logs.
ERROR_TYPES = {
    ErrorKind.INVALID_REQUEST: "invalid_request_error",
    ErrorKind.UNAUTHENTICATED: "authentication_error",
    ErrorKind.PERMISSION_DENIED: "permission_error",
    ErrorKind.NOT_FOUND: "not_found_error",
    ErrorKind.TOO_LARGE: "invalid_request_error",
    ErrorKind.RATE_LIMITED: "tokens",  # what OpenAI sends for a tokens-per-window limit
    ErrorKind.UNAVAILABLE: "server_error",
}

ERROR_CODES = {
    ErrorKind.INVALID_REQUEST: "weir_invalid_request",
    ErrorKind.UNAUTHENTICATED: "weir_unauthenticated",
    ErrorKind.PERMISSION_DENIED: "weir_policy_denied",
    ErrorKind.NOT_FOUND: "weir_not_found",
    ErrorKind.TOO_LARGE: "weir_request_too_large",
    ErrorKind.RATE_LIMITED: "weir_budget_exhausted",
    ErrorKind.UNAVAILABLE: "weir_unavailable",
}


def error_body(kind: ErrorKind, message: str) -> bytes:
    """The JSON body of an HTTP error reply, as OpenAI sends it."""
    return json.dumps(
        {
            "error": {
                "message": message,
                "type": ERROR_TYPES[kind],
                "param": None,
                "code": ERROR_CODES[kind],
            }
        }
    ).encode()
