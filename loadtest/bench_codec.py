"""Codec micro-benchmark: xds-protos (protobuf upb) vs envoy-data-plane (betterproto2).

This keeps the choice in ARCHITECTURE.md ("Protos") measured: the gRPC wire
path uses xds-protos; envoy-data-plane only builds Envoy configuration.

One operation is the work Weir does per body chunk in FULL_DUPLEX_STREAMED:
- parse one ``ProcessingRequest`` (``response_body``, a 100-byte SSE chunk)
  from bytes and read its body;
- build one ``ProcessingResponse`` (``response_body`` -> ``BodyResponse`` ->
  ``CommonResponse`` -> ``BodyMutation.streamed_response{body,
  end_of_stream=false}``) and serialise it.

Both bindings are first checked to do equal work: the same request bytes
parse to the same body, and the responses serialise byte-identically.

Run: ``python loadtest/bench_codec.py`` (a few seconds; bounded well under 20 s).
"""

from __future__ import annotations

import sys
import timeit
from collections.abc import Callable
from dataclasses import dataclass

from envoy.service.ext_proc.v3 import external_processor_pb2 as upb
from envoy_data_plane.envoy.service.ext_proc import v3 as bp

# A realistic chunk: one OpenAI SSE event, padded to exactly 100 bytes.
_EVENT = b'data: {"choices":[{"index":0,"delta":{"content":"hello"}}]}\n\n'
BODY = _EVENT + b" " * (100 - len(_EVENT))
assert len(BODY) == 100

REQUEST_BYTES = upb.ProcessingRequest(
    response_body=upb.HttpBody(body=BODY, end_of_stream=False)
).SerializeToString()

REPEATS = 5
TARGET_SECONDS_PER_REPEAT = 0.1


def upb_parse() -> bytes:
    request = upb.ProcessingRequest.FromString(REQUEST_BYTES)
    return request.response_body.body


def upb_build() -> bytes:
    response = upb.ProcessingResponse(
        response_body=upb.BodyResponse(
            response=upb.CommonResponse(
                body_mutation=upb.BodyMutation(
                    streamed_response=upb.StreamedBodyResponse(body=BODY, end_of_stream=False)
                )
            )
        )
    )
    return response.SerializeToString()


def bp_parse() -> bytes:
    request = bp.ProcessingRequest.parse(REQUEST_BYTES)
    assert request.response_body is not None
    return request.response_body.body


def bp_build() -> bytes:
    response = bp.ProcessingResponse(
        response_body=bp.BodyResponse(
            response=bp.CommonResponse(
                body_mutation=bp.BodyMutation(
                    streamed_response=bp.StreamedBodyResponse(body=BODY, end_of_stream=False)
                )
            )
        )
    )
    return bytes(response)


def upb_op() -> None:
    upb_parse()
    upb_build()


def bp_op() -> None:
    bp_parse()
    bp_build()


def check_equal_work() -> None:
    """Both bindings must read the same body and write the same bytes."""
    if upb_parse() != BODY or bp_parse() != BODY:
        raise SystemExit("parse results differ from the input body")
    upb_bytes, bp_bytes = upb_build(), bp_build()
    if upb_bytes != bp_bytes:
        # Field order may legitimately differ; then at least require that
        # each side parses the other's output to an equal message.
        if upb.ProcessingResponse.FromString(bp_bytes) != upb.ProcessingResponse.FromString(
            upb_bytes
        ) or bp.ProcessingResponse.parse(upb_bytes) != bp.ProcessingResponse.parse(bp_bytes):
            raise SystemExit("the two bindings serialise different responses")
        print("note: responses differ in bytes but parse to equal messages")
    else:
        print(f"check: responses are byte-identical ({len(upb_bytes)} bytes)")


@dataclass(frozen=True)
class Timing:
    name: str
    microseconds: float
    iterations: int


def measure(name: str, func: Callable[[], object]) -> Timing:
    """Best of REPEATS runs, each sized from timeit's autorange to about 0.1 s."""
    timer = timeit.Timer(func)
    number, elapsed = timer.autorange()
    # autorange stops at >= 0.2 s; rescale so each repeat takes about 0.1 s.
    number = max(1, int(number * TARGET_SECONDS_PER_REPEAT / max(elapsed, 1e-9)))
    best = min(timer.repeat(repeat=REPEATS, number=number)) / number
    return Timing(name, best * 1e6, number)


def main() -> int:
    print(f"python {sys.version.split()[0]}; request {len(REQUEST_BYTES)} bytes, body 100 bytes")
    check_equal_work()
    rows = [
        measure("xds-protos  parse", upb_parse),
        measure("xds-protos  build+serialise", upb_build),
        measure("xds-protos  parse+build+serialise", upb_op),
        measure("data-plane  parse", bp_parse),
        measure("data-plane  build+serialise", bp_build),
        measure("data-plane  parse+build+serialise", bp_op),
    ]
    for row in rows:
        runs = f"{row.iterations} iterations x {REPEATS}"
        print(f"{row.name:<36} {row.microseconds:9.2f} µs/op  ({runs})")
    ratio = rows[5].microseconds / rows[2].microseconds
    print(f"ratio envoy-data-plane / xds-protos (parse+build+serialise): {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
