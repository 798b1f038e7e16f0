"""Token usage read from a response that flows through unscanned.

A workload without response rules still owes the operator its usage figures:
"where AI runs and what it does" includes what it costs. The meter watches a copy
of the bytes as they pass and never changes or delays them; anything it cannot
read (broken SSE, a body past the limit, a shape the adapter does not know) just
leaves the usage unknown. Enforcement is not its job: `SseGuard` and the document
guard read usage themselves when there are rules.
"""

from __future__ import annotations

from extproc.llm.base import BadResponseBody, Provider, Usage, parse_response_body
from extproc.llm.response_facts import ResponseFacts
from extproc.sse import SseError, SseParser

# An event longer than this without a blank line is not an LLM event worth metering.
MAX_PENDING_EVENT = 1 << 20
_BLANK_LINES = (b"\n\n", b"\r\n\r\n", b"\r\r")
_FINISHED = (b'"finish_reason":"', b'"finish_reason": "')


class UsageMeter:
    """Feed the response body's chunks as they pass; `finish` gives the usage, if any."""

    def __init__(self, provider: Provider, *, event_stream: bool, max_body: int) -> None:
        self._provider = provider
        self._event_stream = event_stream
        self._pending = bytearray()  # SSE: bytes after the last blank line; JSON: the body
        self._max_body = max_body
        self._usage: Usage | None = None
        self.facts = ResponseFacts()  # the model that answered and why it stopped
        self._saw_terminal = False
        self._gave_up = False

    @property
    def event_stream(self) -> bool:
        return self._event_stream

    @property
    def at_event_boundary(self) -> bool:
        """An SSE body whose bytes so far end with a complete event (known, not guessed)."""
        return self._event_stream and not self._gave_up and not self._pending

    def feed(self, chunk: bytes) -> None:
        if self._gave_up or not chunk:
            return
        pending = self._pending
        if not self._event_stream:
            if len(pending) + len(chunk) > self._max_body:
                self._give_up()
            else:
                pending += chunk
            return
        # Cheap on purpose, since nothing is scanned on this path: only complete events
        # that mention usage are parsed; the rest are dropped at C speed.
        start = len(pending)
        pending += chunk
        search_from = max(start - 3, 0)
        end = max(
            (at + len(sep) for sep in _BLANK_LINES
             if (at := pending.rfind(sep, search_from)) >= 0),
            default=-1,
        )
        if end < 0:
            if len(pending) > MAX_PENDING_EVENT:
                self._give_up()
            return
        complete = bytes(pending[:end])
        del pending[:end]
        if self._worth_reading(complete):
            self._read_events(complete)

    def finish(self) -> Usage | None:
        if self._gave_up:
            return None
        rest = bytes(self._pending)
        self._pending = bytearray()
        if self._event_stream:
            if self._worth_reading(rest):
                self._read_events(rest)
        elif rest:
            try:
                document = parse_response_body(rest)
            except BadResponseBody:
                return None
            self._usage = self._provider.usage(document)
            self.facts.observe(document)
        return None if self._gave_up else self._usage

    @property
    def usage(self) -> Usage | None:
        """What the events read so far report (the figures may still grow)."""
        return None if self._gave_up else self._usage

    @property
    def saw_terminal(self) -> bool:
        """The provider's end-of-stream event has passed: the answer is complete."""
        return self._saw_terminal

    def _worth_reading(self, events: bytes) -> bool:
        # Only the few events that carry usage, or end the stream, are decoded as JSON.
        markers = self._provider.terminal_markers
        return (
            b"usage" in events
            or any(marker in events for marker in markers)
            # A chat choice that is done (every other chunk says `"finish_reason":null`).
            or any(marker in events for marker in _FINISHED)
        )

    def _read_events(self, complete: bytes) -> None:
        parser = SseParser()
        try:
            for event in parser.feed(complete) + parser.finish():
                if event.data is None:
                    continue
                view = self._provider.read_event(event)
                self.facts.observe(view.payload)
                if view.usage is not None:
                    self._usage = view.usage if self._usage is None else self._usage.merged(
                        view.usage
                    )
                self._saw_terminal = self._saw_terminal or view.terminal
        except (SseError, BadResponseBody):
            self._give_up()

    def _give_up(self) -> None:
        self._gave_up = True
        self._pending = bytearray()
