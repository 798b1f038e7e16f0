"""OpenAI Chat Completions (`POST /v1/chat/completions`)."""

from __future__ import annotations

import json

from extproc.llm.base import ErrorKind, LlmRequest, parse_json_object, read_model_and_stream

# The `type` strings OpenAI uses in its error objects; the SDK picks its exception
# class from the HTTP status, the type is for humans and logs.
_ERROR_TYPES = {
    ErrorKind.INVALID_REQUEST: "invalid_request_error",
    ErrorKind.PERMISSION_DENIED: "permission_error",
    ErrorKind.NOT_FOUND: "not_found_error",
    ErrorKind.TOO_LARGE: "invalid_request_error",
    ErrorKind.UNAVAILABLE: "server_error",
}

_ERROR_CODES = {
    ErrorKind.INVALID_REQUEST: "weir_invalid_request",
    ErrorKind.PERMISSION_DENIED: "weir_policy_denied",
    ErrorKind.NOT_FOUND: "weir_not_found",
    ErrorKind.TOO_LARGE: "weir_request_too_large",
    ErrorKind.UNAVAILABLE: "weir_unavailable",
}


class OpenAIChatCompletions:
    name = "openai.chat_completions"
    path = "/v1/chat/completions"

    def matches(self, method: str, path: str) -> bool:
        return method == "POST" and path == self.path

    def parse_request(self, body: bytes) -> LlmRequest:
        return read_model_and_stream(parse_json_object(body))

    def error_body(self, kind: ErrorKind, message: str) -> bytes:
        return json.dumps(
            {
                "error": {
                    "message": message,
                    "type": _ERROR_TYPES[kind],
                    "param": None,
                    "code": _ERROR_CODES[kind],
                }
            }
        ).encode()
