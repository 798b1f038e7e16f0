"""One exchange's token budget, sans-I/O: what to reserve, what was released, what to settle.

The exchange asks; the servicer carries each `Charge` to the shared store
(`extproc.shared_store`) and brings the answer back. The sequence for one call:

1. **Before the request** goes upstream: the input tokens, estimated from the prompt's
   text, are reserved (`reservation`, admit=True). A window with no room for them refuses
   the call (429, `Retry-After` = the window's reset), so N parallel requests cannot each
   spend the whole remainder.
2. **During the stream**: every released event's text is counted as output tokens
   (estimated, `ReleasedEvents`), and the exchange's running total is charged before the
   bytes go out (`running`). When the window's total passes the budget, the answer ends
   in band with the provider's error event: its text so far is delivered, the SDK raises.
3. **At the end**: the provider's own `usage`, when it reported one, replaces the
   estimate (`settlement`); charges set the exchange's total, so the correction is exact
   and never counts twice.

For an OpenAI chat stream, `usage` comes only when the request sets
`stream_options.include_usage`: a metered request gets it set on the way up
(`request_usage`), and the usage-only chunk is removed before a client that did not ask
for it sees it (`ReleasedEvents(strip_usage_chunk=True)`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from extproc.llm.base import Provider, TextPart, Usage
from extproc.shared_store import EXPIRY_SLACK_SECONDS, Charge, budget_key
from extproc.sse import SseError, SseParser
from mesh.budget_policy import CLOSED, PER_USER, Budget

# About four characters per token for English text (OpenAI's rule of thumb); each message
# adds a few tokens of framing. Estimates are corrected to the provider's usage at the end.
CHARS_PER_TOKEN = 4
TOKENS_PER_PART = 4
OPENAI_CHAT = "openai.chat_completions"
# A request without an end user, under a per-user budget, shares one bucket per workload.
NO_USER = "-"


def estimate_tokens(chars: int) -> int:
    return -(-chars // CHARS_PER_TOKEN)


def estimate_input(parts: list[TextPart]) -> int:
    return sum(estimate_tokens(len(part.text)) + TOKENS_PER_PART for part in parts)


def request_usage(provider: Provider, document: dict[str, object]) -> bool:
    """Ask an OpenAI chat stream for its usage chunk; True when the client had not asked.

    ``document`` is changed in place. Other APIs report usage in their streams anyway.
    """
    if provider.name != OPENAI_CHAT or document.get("stream") is not True:
        return False
    options = document.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") is True:
        return False
    merged = dict(options) if isinstance(options, dict) else {}
    merged["include_usage"] = True
    document["stream_options"] = merged
    return True


@dataclass(frozen=True, slots=True)
class BudgetVerdict:
    """The store's answer to one charge, as the exchange acts on it."""

    refused: bool  # a reservation that does not fit, or an answer past the budget
    unavailable: bool  # the store did not answer: the policy's onUnavailable decides
    used: int | None = None


class BudgetGate:
    """The budget of one exchange: its window, its reservation, its running total."""

    def __init__(
        self,
        budget: Budget,
        *,
        workload: str,
        user: str | None,
        on_unavailable: str,
        charge_id: str,
        now: float,
    ) -> None:
        self.budget = budget
        self.on_unavailable = on_unavailable
        subject = f"workload:{workload}"
        if budget.per == PER_USER:
            subject = f"user:{workload}:{user or NO_USER}"
        start = budget.window_start(now)
        self.key = budget_key(subject, budget.window, start)
        self.retry_after = budget.resets_in(now)
        self._ttl = budget.window_seconds - int(now - start) + EXPIRY_SLACK_SECONDS
        self._charge_id = charge_id
        self.input_estimate = 0
        self.output_estimate = 0
        self.reserved = False  # the reservation was applied (or allowed while the store was down)
        self.last_used: int | None = None  # the window's total, as last reported
        self._last_total = 0  # this exchange's total when it was last reported
        self._seq = 0
        self.exceeded = False

    @property
    def fails_closed(self) -> bool:
        return self.on_unavailable == CLOSED

    @property
    def total(self) -> int:
        return self.input_estimate + self.output_estimate

    def _charge(self, total: int, *, admit: bool) -> Charge:
        self._seq += 1
        return Charge(
            self.key, self._charge_id, total, self.budget.tokens, self._ttl, admit, self._seq
        )

    def reservation(self, input_estimate: int) -> Charge:
        self.input_estimate = input_estimate
        return self._charge(input_estimate, admit=True)

    def released(self, tokens: int) -> Charge | None:
        """Output tokens about to be released: the running charge to send first, if any."""
        if tokens <= 0 or not self.reserved:
            return None
        self.output_estimate += tokens
        return self._charge(self.total, admit=False)

    def judge(self, used: int | None, applied: bool, *, admit: bool) -> BudgetVerdict:
        if used is None:
            if admit:
                return BudgetVerdict(refused=False, unavailable=True)
            # Mid-answer and unreachable: keep to the budget as last known, plus what this
            # answer has added since.
            self.exceeded = self._locally_exceeded()
            return BudgetVerdict(refused=self.exceeded, unavailable=True)
        self.last_used = used
        self._last_total = self.total
        if admit:
            return BudgetVerdict(refused=not applied, unavailable=False, used=used)
        self.exceeded = used > self.budget.tokens
        return BudgetVerdict(refused=self.exceeded, unavailable=False, used=used)

    def _locally_exceeded(self) -> bool:
        if self.last_used is None:
            return False
        since = self.total - self._last_total
        return self.last_used + since > self.budget.tokens

    def settlement(self, usage: Usage | None, *, spent: bool) -> Charge | None:
        """The final charge: the provider's usage when known, else the estimate.

        ``spent`` False (refused, or the upstream's own error reply): nothing was spent.
        """
        if not self.reserved:
            return None
        if usage is not None and (
            usage.input_tokens is not None or usage.output_tokens is not None
        ):
            # A stream ended early may report its input only: the rest stays estimated.
            total = (self.input_estimate if usage.input_tokens is None else usage.input_tokens) + (
                self.output_estimate if usage.output_tokens is None else usage.output_tokens
            )
        else:
            total = self.total if spent else 0
        return self._charge(total, admit=False)


class ReleasedEvents:
    """The SSE bytes a budgeted exchange releases, cut at event boundaries and counted.

    Only complete events go out (a partial one waits for its blank line), so an in-band
    error can always follow what was released. With ``strip_usage_chunk`` the OpenAI
    usage-only chunk (empty ``choices``, a ``usage`` object) is read and dropped.
    """

    def __init__(self, provider: Provider, *, strip_usage_chunk: bool) -> None:
        self._provider = provider
        self._strip = strip_usage_chunk
        self._parser = SseParser()
        self._broken = False
        self.usage: Usage | None = None

    def feed(self, chunk: bytes, *, final: bool = False) -> tuple[bytes, int]:
        """Bytes to release now, and the output tokens their text is estimated at."""
        if self._broken:
            return chunk, estimate_tokens(len(chunk))
        try:
            events = self._parser.feed(chunk) if chunk else []
            if final:
                events += self._parser.finish()
        except SseError:
            # Not SSE after all: the bytes flow unchanged, counted by their size.
            self._broken = True
            return chunk, estimate_tokens(len(chunk))
        out: list[bytes] = []
        chars = 0
        for event in events:
            if event.data is None:
                out.append(event.raw)
                continue
            try:
                view = self._provider.read_event(event)
            except ValueError:
                out.append(event.raw)
                continue
            if view.usage is not None:
                self.usage = view.usage if self.usage is None else self.usage.merged(view.usage)
            if self._strip and _usage_only(view.payload):
                continue
            chars += sum(len(delta.text) for delta in view.deltas)
            out.append(event.raw)
        return b"".join(out), estimate_tokens(chars)


def _usage_only(payload: object) -> bool:
    return (
        isinstance(payload, dict)
        and payload.get("choices") == []
        and isinstance(payload.get("usage"), dict)
    )


def dump_document(document: dict[str, object]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
