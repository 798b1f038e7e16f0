"""JSON-RPC 2.0 as MCP carries it over streamable HTTP: one message per POST body.

Sans-I/O: bytes in, a `JsonRpcMessage` (or a `JsonRpcProblem` to answer) out,
and the error bodies Weir answers with. Malformed input is a value, never an
exception past this module: unparseable JSON is `-32700`, a JSON value that is
no JSON-RPC 2.0 message is `-32600`, both answered with `id: null` when the id
cannot be read (JSON-RPC 2.0, section 5).
"""

from __future__ import annotations

from dataclasses import dataclass

from extproc.llm.base import BadResponseBody, dump_json, parse_response_json

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
# Server-defined range (-32000..-32099): Weir's policy refusals and header mismatches.
REFUSED_BY_POLICY = -32001
# The MCP 2.x SDK's code for headers that disagree with the body (mcp_types.jsonrpc).
HEADER_MISMATCH = -32020

RequestId = str | int | None


@dataclass(frozen=True, slots=True)
class JsonRpcProblem(Exception):
    """A message Weir cannot pass on: answer it with this JSON-RPC error."""

    code: int
    message: str
    id: RequestId = None


@dataclass(frozen=True, slots=True)
class JsonRpcMessage:
    """One JSON-RPC 2.0 message: a request, a notification, or a response.

    `document` is the whole parsed object; the other fields are read from it.
    """

    document: dict[str, object]
    id: RequestId
    method: str | None  # None for a response
    has_id: bool

    @property
    def is_request(self) -> bool:
        return self.method is not None and self.has_id

    @property
    def is_notification(self) -> bool:
        return self.method is not None and not self.has_id

    @property
    def is_response(self) -> bool:
        return self.method is None

    @property
    def params(self) -> dict[str, object]:
        params = self.document.get("params")
        return params if isinstance(params, dict) else {}

    @property
    def result(self) -> dict[str, object] | None:
        result = self.document.get("result")
        return result if isinstance(result, dict) else None


def looks_like_jsonrpc(document: object) -> bool:
    """A JSON object that says it is JSON-RPC 2.0 (how a body is recognised as MCP)."""
    return isinstance(document, dict) and document.get("jsonrpc") == "2.0"


def parse_body(body: bytes) -> JsonRpcMessage:
    """The one JSON-RPC message of a POST body, or JsonRpcProblem."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise JsonRpcProblem(PARSE_ERROR, "parse error: the body is not valid UTF-8") from None
    try:
        document = parse_response_json(text, "the body")
    except BadResponseBody as exc:
        raise JsonRpcProblem(PARSE_ERROR, f"parse error: {exc}") from None
    return message_of(document)


def message_of(document: object) -> JsonRpcMessage:
    """Validate a parsed JSON value as one JSON-RPC 2.0 message."""
    if isinstance(document, list):
        # Batches left MCP in 2025-06-18; a gateway that judged only one element of a
        # batch would let the others through, so they are refused whole.
        raise JsonRpcProblem(INVALID_REQUEST, "invalid request: JSON-RPC batches are not accepted")
    if not isinstance(document, dict):
        raise JsonRpcProblem(INVALID_REQUEST, "invalid request: a JSON-RPC message is an object")
    has_id = "id" in document
    raw_id = document.get("id")
    valid_id = raw_id is None or (isinstance(raw_id, str | int) and not isinstance(raw_id, bool))
    msg_id: RequestId = raw_id if valid_id else None  # type: ignore[assignment]
    if document.get("jsonrpc") != "2.0":
        raise JsonRpcProblem(INVALID_REQUEST, "invalid request: jsonrpc must be \"2.0\"", msg_id)
    if not valid_id:
        raise JsonRpcProblem(INVALID_REQUEST, "invalid request: id must be a string or integer")
    method = document.get("method")
    if method is not None:
        if not isinstance(method, str) or not method:
            raise JsonRpcProblem(
                INVALID_REQUEST, "invalid request: method must be a string", msg_id
            )
        params = document.get("params")
        if params is not None and not isinstance(params, dict | list):
            raise JsonRpcProblem(
                INVALID_REQUEST, "invalid request: params must be an object or array", msg_id
            )
        return JsonRpcMessage(document, msg_id, method, has_id)
    if ("result" in document) == ("error" in document) or not has_id:
        raise JsonRpcProblem(
            INVALID_REQUEST,
            "invalid request: neither a request (method) nor a response (id and result or error)",
            msg_id,
        )
    return JsonRpcMessage(document, msg_id, None, has_id)


def error_document(
    msg_id: RequestId, code: int, message: str, data: object = None
) -> dict[str, object]:
    error: dict[str, object] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": msg_id, "error": error}


def error_body(msg_id: RequestId, code: int, message: str, data: object = None) -> bytes:
    return dump_json(error_document(msg_id, code, message, data))


def dump_message(document: object) -> bytes:
    return dump_json(document)


__all__ = [
    "HEADER_MISMATCH",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "PARSE_ERROR",
    "REFUSED_BY_POLICY",
    "JsonRpcMessage",
    "JsonRpcProblem",
    "error_body",
    "error_document",
    "looks_like_jsonrpc",
    "message_of",
    "parse_body",
]
