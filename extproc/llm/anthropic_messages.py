"""Anthropic Messages (`POST /v1/messages`)."""

from __future__ import annotations

import json

from extproc.llm.base import ErrorKind, LlmRequest, parse_json_object, read_model_and_stream

# Anthropic's documented error types, see its "Errors" page.
_ERROR_TYPES = {
    ErrorKind.INVALID_REQUEST: "invalid_request_error",
    ErrorKind.PERMISSION_DENIED: "permission_error",
    ErrorKind.NOT_FOUND: "not_found_error",
    ErrorKind.TOO_LARGE: "request_too_large",
    ErrorKind.UNAVAILABLE: "api_error",
}


class AnthropicMessages:
    name = "anthropic.messages"
    path = "/v1/messages"

    def matches(self, method: str, path: str) -> bool:
        return method == "POST" and path == self.path

    def parse_request(self, body: bytes) -> LlmRequest:
        return read_model_and_stream(parse_json_object(body))

    def error_body(self, kind: ErrorKind, message: str) -> bytes:
        return json.dumps(
            {"type": "error", "error": {"type": _ERROR_TYPES[kind], "message": message}}
        ).encode()
