"""The vocabulary of one HTTP exchange as Weir sees it, free of any wire format.

`protos.wire` turns Envoy's ProcessingRequest messages into the *events* below
and turns the *actions* below into ProcessingResponse messages.  Everything in
between (`extproc.stream`) speaks only this vocabulary, so it is testable
without gRPC, sockets or protobuf.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum


class Direction(Enum):
    REQUEST = "request"
    RESPONSE = "response"


Headers = tuple[tuple[str, str], ...]


def header_value(headers: Headers, name: str) -> str | None:
    """First value of a header; names are compared case-insensitively (HTTP/2 sends lowercase)."""
    name = name.lower()
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


class ProtocolError(Exception):
    """Envoy sent something the ext_proc protocol does not allow here.

    The servicer ends the gRPC stream with an error, and Envoy, configured with
    `failure_mode_allow: false`, fails the HTTP exchange closed.
    """


# --- events: what Envoy tells us --------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeadersEvent:
    direction: Direction
    headers: Headers
    end_of_stream: bool
    # Only the first message of an exchange carries attributes, as a flat mapping of
    # attribute name -> plain Python value (str, dict, list ...).
    attributes: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BodyEvent:
    direction: Direction
    chunk: bytes
    end_of_stream: bool


@dataclass(frozen=True, slots=True)
class TrailersEvent:
    direction: Direction
    trailers: Headers


Event = HeadersEvent | BodyEvent | TrailersEvent


# --- actions: what we tell Envoy ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContinueHeaders:
    """Let the headers of `direction` go on, with optional mutations."""

    direction: Direction
    set_headers: Headers = ()
    remove_headers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StreamBody:
    """One FULL_DUPLEX_STREAMED body chunk (`BodyMutation.streamed_response`)."""

    direction: Direction
    chunk: bytes
    end_of_stream: bool


@dataclass(frozen=True, slots=True)
class ContinueTrailers:
    direction: Direction


@dataclass(frozen=True, slots=True)
class Respond:
    """An ImmediateResponse: the exchange ends here with this local reply."""

    status: int
    body: bytes
    headers: Headers = ()
    details: str = ""


Action = ContinueHeaders | StreamBody | ContinueTrailers | Respond
