"""The x-forwarded-client-cert (XFCC) header: a strict parser.

This module owns turning the header text into elements of key/value pairs, in
Envoy's format: elements separated by ``,``, pairs by ``;``, key and value by
``=``. A value may be double-quoted; inside quotes ``,``, ``;`` and ``=`` are
literal and ``\\"`` is a quote. It does not decide which element to trust:
that is ``mesh.identity``'s job (only the last one, appended by a trusted
proxy).

The parser is strict because the header crosses a trust boundary: under
APPEND_FORWARD a client controls everything before the proxy's own element.
Anything ambiguous (an unterminated quote, a pair without ``=``, a repeated
single-valued key) fails the whole header rather than being guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_HEADER_BYTES = 16 * 1024
MAX_ELEMENTS = 64

KNOWN_KEYS = ("By", "Hash", "Cert", "Chain", "Subject", "URI", "DNS")
# Keys Envoy writes at most once per element; a repeat could mean two
# different identities and there is no right one to pick.
_SINGLE_VALUED = frozenset(k.lower() for k in ("By", "Hash", "Cert", "Chain", "Subject"))
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


class XfccError(ValueError):
    """The header is not well-formed XFCC; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class XfccElement:
    """One proxy hop's entry. Keys keep their spelling; lookups ignore case."""

    pairs: tuple[tuple[str, str], ...]

    def get(self, key: str) -> str | None:
        """The first value for ``key`` (any case), or None."""
        wanted = key.lower()
        for k, v in self.pairs:
            if k.lower() == wanted:
                return v
        return None

    def get_all(self, key: str) -> tuple[str, ...]:
        """Every value for ``key`` (any case), in order."""
        wanted = key.lower()
        return tuple(v for k, v in self.pairs if k.lower() == wanted)

    @property
    def by(self) -> str | None:
        return self.get("By")

    @property
    def uris(self) -> tuple[str, ...]:
        return self.get_all("URI")


def parse_xfcc(header: str) -> list[XfccElement]:
    """Parse a whole XFCC header value, or raise ``XfccError``.

    An empty header has no elements.
    """
    if not isinstance(header, str):
        raise XfccError(f"expected a string, got {type(header).__name__}")
    if (
        len(header) > MAX_HEADER_BYTES
        or len(header.encode("utf-8", "surrogatepass")) > MAX_HEADER_BYTES
    ):
        raise XfccError(f"header longer than {MAX_HEADER_BYTES} bytes")
    if header == "":
        return []
    return _Parser(header).parse()


class _Parser:
    """A single left-to-right pass; ``pos`` only moves forward."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse(self) -> list[XfccElement]:
        elements: list[XfccElement] = []
        while True:
            if len(elements) == MAX_ELEMENTS:
                raise XfccError(f"more than {MAX_ELEMENTS} elements")
            elements.append(self._element(len(elements)))
            if self.pos == len(self.text):
                return elements
            # _element stops only at ',' or the end.
            self.pos += 1

    def _element(self, index: int) -> XfccElement:
        pairs: list[tuple[str, str]] = []
        seen: set[str] = set()
        while True:
            key, value = self._pair(index)
            folded = key.lower()
            if folded in _SINGLE_VALUED and folded in seen:
                raise XfccError(f"element {index}: duplicate key {key!r}")
            seen.add(folded)
            pairs.append((key, value))
            if self.pos == len(self.text) or self.text[self.pos] == ",":
                return XfccElement(tuple(pairs))
            self.pos += 1  # the ';'

    def _pair(self, index: int) -> tuple[str, str]:
        text = self.text
        start = self.pos
        while self.pos < len(text) and text[self.pos] not in "=;,":
            self.pos += 1
        key = text[start : self.pos]
        if self.pos == len(text) or text[self.pos] != "=":
            if not key:
                raise XfccError(f"element {index}: empty pair")
            raise XfccError(f"element {index}: pair without '='")
        if not key:
            raise XfccError(f"element {index}: empty key")
        for ch in key:
            if ch not in _KEY_CHARS:
                raise XfccError(f"element {index}: invalid character {ch!r} in key")
        self.pos += 1  # the '='
        if self.pos < len(text) and text[self.pos] == '"':
            value = self._quoted(index, key)
        else:
            value = self._bare(index, key)
        return key, value

    def _bare(self, index: int, key: str) -> str:
        text = self.text
        start = self.pos
        while self.pos < len(text) and text[self.pos] not in ";,":
            if text[self.pos] == '"':
                raise XfccError(f"element {index}: quote inside unquoted {key} value")
            self.pos += 1
        return text[start : self.pos]

    def _quoted(self, index: int, key: str) -> str:
        text = self.text
        self.pos += 1  # the opening quote
        out: list[str] = []
        while True:
            if self.pos >= len(text):
                raise XfccError(f"element {index}: unterminated quoted {key} value")
            ch = text[self.pos]
            if ch == '"':
                self.pos += 1
                break
            if ch == "\\" and self.pos + 1 < len(text) and text[self.pos + 1] in '"\\':
                out.append(text[self.pos + 1])
                self.pos += 2
                continue
            # Any other backslash is literal: Envoy escapes only quotes, and a
            # Subject DN may contain backslashes of its own.
            out.append(ch)
            self.pos += 1
        if self.pos < len(text) and text[self.pos] not in ";,":
            raise XfccError(f"element {index}: text after closing quote of {key} value")
        return "".join(out)
