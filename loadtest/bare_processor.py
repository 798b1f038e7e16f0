"""The bare reference ext_proc processor: grpc.aio, FULL_DUPLEX_STREAMED, doing nothing.

It is the floor `loadtest/run_bench.py` measures Weir against: the cost of
the Python gRPC path itself, with no policy, parsing or scanning. For every
``ProcessingRequest`` it sends exactly one ``ProcessingResponse``:

- request or response headers: ``CONTINUE`` (an empty ``CommonResponse``);
- a body chunk: the same bytes straight back as
  ``BodyMutation.streamed_response``, with ``end_of_stream`` when the chunk
  carried it (FDS requires the server to send it once it has seen it);
- trailers: an empty ``TrailersResponse``.

It uses the wire messages from :mod:`protos.wire` (xds-protos, upb), like
Weir. Run: ``python -m loadtest.bare_processor --listen 127.0.0.1:9100``;
it prints ``listening on HOST:PORT`` and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

import grpc

from protos import wire


def respond(request: wire.ProcessingRequest) -> wire.ProcessingResponse:
    """The do-nothing answer to one ProcessingRequest."""
    response = wire.ProcessingResponse()
    phase = request.WhichOneof("request")
    if phase == "request_body" or phase == "response_body":
        chunk = getattr(request, phase)
        streamed = getattr(response, phase).response.body_mutation.streamed_response
        streamed.body = chunk.body
        streamed.end_of_stream = chunk.end_of_stream
    elif phase == "request_headers" or phase == "response_headers":
        getattr(response, phase).response.SetInParent()
    elif phase == "request_trailers" or phase == "response_trailers":
        getattr(response, phase).SetInParent()
    else:
        raise ValueError(f"ProcessingRequest without a known phase ({phase!r})")
    return response


class BareProcessor(wire.ExternalProcessorServicer):  # type: ignore[misc]
    async def Process(
        self,
        request_iterator: AsyncIterator[wire.ProcessingRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[wire.ProcessingResponse]:
        async for request in request_iterator:
            yield respond(request)


async def start_bare_processor(listen: str) -> tuple[grpc.aio.Server, int]:
    """Start the processor on ``HOST:PORT`` (port 0 picks one); returns the server and port."""
    server = grpc.aio.server()
    wire.add_ExternalProcessorServicer_to_server(BareProcessor(), server)
    port = server.add_insecure_port(listen)
    await server.start()
    return server, port


async def _serve(listen: str) -> None:
    server, port = await start_bare_processor(listen)
    host = listen.rsplit(":", 1)[0]
    print(f"listening on {host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Do-nothing grpc.aio ext_proc (FDS) reference")
    parser.add_argument("--listen", default="127.0.0.1:9100", metavar="HOST:PORT")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.listen))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
