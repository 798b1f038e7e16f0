"""The request path as any server might route it: the normal form Weir matches APIs on.

Sans-I/O and pure: a raw ``:path`` goes in, a `RequestPath` comes out. Weir never
rewrites the path it forwards; it only decides which API a request is. Servers
disagree on how they read a path, so the normal form is deliberately the *union*
of what common servers do: whatever one of them could route to an LLM API, Weir
treats as that API. Matching more than the upstream does costs at worst a
refusal of a strange request; matching less would let a call through unjudged.

The steps, in order:
1. The query (``?``) and fragment (``#``) are split off.
2. Percent-escapes are decoded, repeatedly, until nothing changes (at most
   `MAX_DECODE_ROUNDS`): ``%63`` is ``c``, ``%2F`` a slash, ``%2e%2e`` a dot
   segment, and double encoding (``%2563``) is decoded too, as a proxy that
   decodes once in front of a server that decodes again would. Bytes that are
   not UTF-8 become U+FFFD, which matches no API; so do the escapes of a path
   still encoded after the last round.
3. A ``?`` or ``#`` that decoding produced ends the path as well.
4. Backslashes are slashes (as for IIS and some frameworks); path parameters
   (``;jsessionid=...``, stripped by Java servers) are dropped from each segment.
5. Empty segments (duplicate slashes) and ``.`` segments go, ``..`` removes the
   segment before it (never above the root), and a trailing slash goes.
6. The result is lower-cased: some servers route case-insensitively.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

# Three rounds cover any real proxy chain; more rounds than this on a path is an
# attack, and what is left still goes through the remaining steps.
MAX_DECODE_ROUNDS = 8


@dataclass(frozen=True, slots=True)
class RequestPath:
    """A raw request path and its normal form (``canonical``) for matching APIs."""

    raw: str
    canonical: str
    query: str

    @property
    def changed(self) -> bool:
        """True when the raw path is not already its own normal form (decision-log worthy)."""
        return self.raw.split("?", 1)[0].split("#", 1)[0] != self.canonical


def normalise_path(raw: str) -> RequestPath:
    """The normal form of ``raw`` (see the module docstring for the steps)."""
    path, query = _split_query(raw)
    for rounds in range(MAX_DECODE_ROUNDS + 1):
        if "%" not in path:
            break
        decoded = unquote_to_bytes(path).decode("utf-8", "replace")
        if decoded == path:
            break
        if rounds == MAX_DECODE_ROUNDS:
            # Still encoded after the bound: an attack, not a client. Its remaining
            # escapes are voided, so it matches no API and its normal form is a fixed point.
            path = path.replace("%", "\ufffd")
            break
        path = decoded
    path, decoded_query = _split_query(path)
    if decoded_query and not query:
        query = decoded_query
    path = path.replace("\\", "/")
    segments: list[str] = []
    for segment in path.split("/"):
        segment = segment.split(";", 1)[0]
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    return RequestPath(raw=raw, canonical="/" + "/".join(segments).lower(), query=query)


def _split_query(path: str) -> tuple[str, str]:
    cut = len(path)
    for mark in ("?", "#"):
        at = path.find(mark)
        if at != -1:
            cut = min(cut, at)
    query = path[cut + 1 :].split("#", 1)[0] if cut < len(path) and path[cut] == "?" else ""
    return path[:cut], query
