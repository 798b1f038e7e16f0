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

With ``--metrics HOST:PORT`` it also times each answer (``respond`` and nothing
else, as Weir times its own decide-and-encode step) into a
``weir_message_processing_seconds`` histogram with Weir's buckets, served as
Prometheus text on ``http://HOST:PORT/metrics``: the reference for Weir's
per-message time. Off by default, so the throughput and CPU reference pays
nothing for it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Callable

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
    def __init__(self, observe: Callable[[float], None] | None = None) -> None:
        self._observe = observe

    async def Process(
        self,
        request_iterator: AsyncIterator[wire.ProcessingRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[wire.ProcessingResponse]:
        observe = self._observe
        if observe is None:
            async for request in request_iterator:
                yield respond(request)
            return
        async for request in request_iterator:
            started = time.perf_counter()
            response = respond(request)
            observe(time.perf_counter() - started)
            yield response


def message_seconds_observer(listen: str) -> tuple[Callable[[float], None], int]:
    """A histogram like Weir's, served on ``HOST:PORT`` (0 picks one): (observe, port)."""
    from prometheus_client import CollectorRegistry, Histogram, start_http_server

    from extproc.metrics import MESSAGE_SECONDS_BUCKETS

    registry = CollectorRegistry()
    histogram = Histogram(
        "weir_message_processing_seconds",
        "Time the bare processor takes to build the answer to one ext_proc message.",
        buckets=MESSAGE_SECONDS_BUCKETS,
        registry=registry,
    )
    host, _, port = listen.rpartition(":")
    server, _thread = start_http_server(int(port), addr=host, registry=registry)
    return histogram.observe, int(server.server_port)


async def start_bare_processor(
    listen: str, observe: Callable[[float], None] | None = None
) -> tuple[grpc.aio.Server, int]:
    """Start the processor on ``HOST:PORT`` (port 0 picks one); returns the server and port."""
    server = grpc.aio.server()
    wire.add_ExternalProcessorServicer_to_server(BareProcessor(observe), server)
    port = server.add_insecure_port(listen)
    await server.start()
    return server, port


async def _serve(listen: str, metrics: str | None) -> None:
    observe = None
    if metrics is not None:
        observe, metrics_port = message_seconds_observer(metrics)
        print(f"metrics on {metrics.rpartition(':')[0]}:{metrics_port}", flush=True)
    server, port = await start_bare_processor(listen, observe)
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
    parser.add_argument("--metrics", default=None, metavar="HOST:PORT",
                        help="time each answer and serve the histogram on /metrics here")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.listen, args.metrics))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
