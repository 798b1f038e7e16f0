"""Is this request body an LLM call, whatever its path or host? Which API is it shaped as?

Sans-I/O and pure. In sidecar-outbound mode Weir sees every outbound HTTP call
of a workload; a call to an LLM API that no rule names ("shadow AI"), or an
OpenAI-compatible server on a path Weir does not know, must still be judged
and scanned. So a body is an **LLM call** when it is a JSON object with a
``model`` key and one of ``messages``, ``input`` or ``prompt`` at the top level.

Its API, by shape (first rule that fits):
1. an ``anthropic-version`` request header, or a top-level ``anthropic_version``
   or ``system`` key (OpenAI chat has no top-level ``system``), with
   ``messages``: Anthropic messages;
2. ``messages``: OpenAI chat completions, the shape every OpenAI-compatible
   server speaks;
3. ``input``, or ``prompt`` as an object (a stored prompt template): OpenAI
   responses;
4. ``prompt`` otherwise (legacy completions and their kin): an LLM call whose API
   Weir does not read, `UNREADABLE_API`; the exchange treats it as an unknown API.

Cheap by construction:
- `unsniffable` names the requests never held at all: tunnels and gRPC streams;
- `json_object_start` decides from the first bytes whether a body can be a JSON
  object at all: anything else (binary, multipart, text) streams through untouched;
- `sniff` settles most ordinary JSON without parsing it (no key can be ``model``
  when neither the word nor a ``\\u`` escape occurs), and parses the rest once;
- `TopLevelKeys` reads the top-level keys of a body too large to hold, as it
  streams, skipping string contents and nested values with regular expressions,
  and says when the object has closed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from extproc.events import Headers, header_value

MODEL_KEY = "model"
TEXT_KEYS = frozenset({"messages", "input", "prompt"})
LLM_KEYS = TEXT_KEYS | {MODEL_KEY}

ANTHROPIC = "anthropic.messages"
OPENAI_CHAT = "openai.chat_completions"
OPENAI_RESPONSES = "openai.responses"
# An LLM call whose API none of Weir's adapters reads (legacy `prompt` completions).
UNREADABLE_API = "unreadable"

# What may come before the `{` of a JSON object: JSON whitespace, and the byte-order
# marks and NUL bytes of UTF-16/UTF-32 text, which Python's json.loads(bytes) accepts.
_LEADING = b" \t\r\n\x00\xef\xbb\xbf\xfe\xff"


@dataclass(frozen=True, slots=True)
class LlmShape:
    """A body recognised as an LLM call: the API it is shaped as, and why (for the log)."""

    api: str
    reason: str


def json_object_start(prefix: bytes | bytearray) -> bool | None:
    """True if a body starting with `prefix` may be a JSON object, False if it cannot be,
    None while `prefix` holds only what may precede the ``{`` (wait for more bytes)."""
    rest = prefix.lstrip(_LEADING)
    if not rest:
        return None
    return rest[:1] == b"{"


def plain_json_start(prefix: bytes | bytearray) -> bool:
    """True when a body opens as UTF-8 JSON (no byte-order mark, no NUL bytes), the
    encoding `TopLevelKeys` reads."""
    head = bytes(prefix[:4])
    return b"\x00" not in head and not head.startswith((b"\xef\xbb\xbf", b"\xfe\xff", b"\xff\xfe"))


def unsniffable(method: str, headers: Headers) -> str | None:
    """Why a request's body must not be held for sniffing, or None.

    A tunnel (CONNECT, an ``upgrade`` to WebSocket or h2c) or a gRPC stream carries no
    JSON body, and its client may send nothing until the server has answered: holding
    its headers for a first body chunk would hang it. No LLM API Weir knows of reads a
    JSON body under those terms (a FastAPI server, for one, reads JSON only under a
    JSON content type).
    """
    if method.upper() == "CONNECT":
        return "a CONNECT tunnel"
    if header_value(headers, "upgrade") is not None:
        return "an upgraded connection"
    content_type = (header_value(headers, "content-type") or "").lower()
    if content_type.startswith("application/grpc"):
        return "a gRPC stream"
    return None


def shape_of(keys: Mapping[str, object], headers: Headers) -> LlmShape | None:
    """The LLM shape of a JSON object with these top-level keys (values only for ``prompt``).

    Key names are compared case-insensitively too: some servers bind JSON properties
    that way (ASP.NET Core's web defaults do). A call spelled in another case is one
    Weir's adapters cannot read, so it is `UNREADABLE_API`.
    """
    if MODEL_KEY not in keys or not (TEXT_KEYS & keys.keys()):
        folded = {key.lower() for key in keys}
        if MODEL_KEY in folded and TEXT_KEYS & folded:
            return LlmShape(UNREADABLE_API, "model and messages/input/prompt in another case")
        return None
    if "messages" in keys:
        if header_value(headers, "anthropic-version") is not None:
            return LlmShape(ANTHROPIC, "model and messages, with an anthropic-version header")
        if "anthropic_version" in keys or "system" in keys:
            return LlmShape(ANTHROPIC, "model and messages, with a top-level system")
        return LlmShape(OPENAI_CHAT, "model and messages")
    if "input" in keys:
        return LlmShape(OPENAI_RESPONSES, "model and input")
    if isinstance(keys.get("prompt"), dict):
        return LlmShape(OPENAI_RESPONSES, "model and a prompt template")
    return LlmShape(UNREADABLE_API, "model and a prompt of an API Weir does not read")


# A body that starts like a JSON object but does not parse: a lenient server (JSON5,
# comments, trailing commas) might still read it as an LLM call, so names are enough.
_MODEL_WORD = re.compile(rb"model", re.IGNORECASE)
_TEXT_WORD = re.compile(rb"messages|input|prompt", re.IGNORECASE)


def cannot_name_a_model(body: bytes) -> bool:
    """True when no key of `body` can be ``model`` in any case or escaping: the word is
    absent and so is any ``\\u`` escape. Most ordinary JSON is settled here at memchr
    speed, without a parse."""
    if not plain_json_start(body):
        return False  # UTF-16/32 spell the word with NUL bytes between its letters
    lowered = body.lower()
    return b"model" not in lowered and b"\\u" not in lowered


def sniff(body: bytes, headers: Headers) -> LlmShape | None:
    """The LLM shape of a whole body that `json_object_start` let in, or None."""
    if cannot_name_a_model(body):
        return None
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            # What orjson refuses (a BOM, UTF-16/32, NaN, huge numbers) the standard
            # parser decides, from bytes, detecting the encoding as a permissive server would.
            document = json.loads(body)
        except (ValueError, RecursionError):
            if _MODEL_WORD.search(body) and _TEXT_WORD.search(body):
                return LlmShape(OPENAI_CHAT, "unparseable JSON naming model and a text key")
            return None
    if not isinstance(document, dict):
        return None
    return shape_of(document, headers)


class TopLevelKeys:
    """The top-level keys of a JSON object, read incrementally from its bytes.

    For a body too large to hold: Weir streams it on and keeps reading its keys, so
    it can still tell at the end whether it was an LLM call padded past the limit.
    Keys are decoded (``"mod\\u0065l"`` is ``model``); values are skipped. After the
    object closes, a further ``{`` is read as another top-level object (a server
    reading concatenated JSON would). Bytes that break JSON's grammar (a closer with
    nothing open) set `malformed`, and reading stops.
    """

    _MAX_KEY_BYTES = 256
    _STRING_BODY = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*', re.DOTALL)
    _AT_TOP = re.compile(rb'["{}\[\],]')
    # Inside a top-level value: everything up to the next bracket, whole strings included,
    # in one C-speed match (possessive, so a long value never backtracks). A string that
    # the chunk cuts off stops the run at its opening quote.
    _NESTED_RUN = re.compile(rb'(?:[^"{}\[\]]++|"[^"\\]*+(?:\\.[^"\\]*+)*+")*+', re.DOTALL)

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.malformed = False
        self._depth = 0
        self._opened = False
        self._in_string = False
        self._escape_pending = False
        self._expect_key = False
        self._key: bytearray | None = None

    def feed(self, data: bytes) -> None:
        pos, end = 0, len(data)
        while pos < end and not self.malformed:
            if self._in_string:
                pos = self._string(data, pos)
                continue
            if self._depth >= 2:
                run = self._NESTED_RUN.match(data, pos)
                assert run is not None  # the pattern matches the empty string
                pos = run.end()
                if pos == end:
                    return
                pos += 1
                self._structural(data[pos - 1])
                continue
            found = self._AT_TOP.search(data, pos)
            if found is None:
                return
            pos = found.end()
            self._structural(data[found.start()])

    @property
    def closed(self) -> bool:
        """True when every top-level object begun has closed: the bytes read so far may be
        a complete JSON document, and the keys are final unless another object follows."""
        return self._opened and self._depth == 0 and not self._in_string

    @property
    def llm_keys(self) -> frozenset[str]:
        """The LLM keys among the top-level keys, in any letter case (as lower case)."""
        return frozenset({key.lower() for key in self.keys} & LLM_KEYS)

    def _structural(self, byte: int) -> None:
        if byte == 0x22:  # '"'
            self._in_string = True
            if self._depth == 1 and self._expect_key:
                self._key = bytearray()
                self._expect_key = False
        elif byte in (0x7B, 0x5B):  # '{', '['
            self._opened = True
            self._depth += 1
            self._expect_key = self._depth == 1 and byte == 0x7B
        elif byte in (0x7D, 0x5D):  # '}', ']'
            if self._depth == 0:
                self.malformed = True
            self._depth -= 1
        elif byte == 0x2C and self._depth == 1:  # ','
            self._expect_key = True

    def _string(self, data: bytes, pos: int) -> int:
        if self._escape_pending:
            self._escape_pending = False
            self._capture(data[pos : pos + 1])
            pos += 1
        match = self._STRING_BODY.match(data, pos)
        assert match is not None  # the pattern matches the empty string
        stop = match.end()
        self._capture(data[pos:stop])
        if stop == len(data):
            return stop
        if data[stop] == 0x5C:  # a backslash, the last byte of this chunk
            self._capture(data[stop : stop + 1])
            self._escape_pending = True
            return stop + 1
        self._in_string = False  # data[stop] is the closing quote
        if self._key is not None:
            self._finish_key(bytes(self._key))
            self._key = None
        return stop + 1

    def _capture(self, piece: bytes) -> None:
        if self._key is not None:
            if len(self._key) + len(piece) > self._MAX_KEY_BYTES:
                self._key = None  # far longer than any key that matters
            else:
                self._key += piece

    def _finish_key(self, raw: bytes) -> None:
        try:
            key = json.loads(b'"' + raw + b'"')
        except ValueError:
            return
        if isinstance(key, str):
            self.keys.add(key)
