"""What an answer says about itself: the model that answered and why it stopped.

OpenTelemetry's GenAI conventions ask for `gen_ai.response.model` and
`gen_ai.response.finish_reasons`. The three APIs put them in a few known places
of their JSON, whole or streamed, so one reader serves them all:

- OpenAI chat: `model` at the top of the body and of every chunk;
  `choices[*].finish_reason` once a choice is done (null before).
- OpenAI responses: `model` and `status` of the response object, at the top of
  a whole body or under `response` in `response.created` / `.completed` /
  `.incomplete` events; an incomplete response says why in
  `incomplete_details.reason`.
- Anthropic messages: `model` and `stop_reason` at the top of a whole body or
  under `message` in `message_start`; `delta.stop_reason` in `message_delta`.

These are facts for records and telemetry only. Nothing here decides anything,
and a value that is not a short plain string is ignored rather than recorded:
what reaches a span must never be content.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Model names and finish reasons are short tokens; anything else is not recorded.
_TOKEN = re.compile(r"[A-Za-z0-9._:/@+\-]{1,128}")
_MAX_REASONS = 16


def _token(value: object) -> str | None:
    return value if isinstance(value, str) and _TOKEN.fullmatch(value) else None


@dataclass(slots=True)
class ResponseFacts:
    """Read from each JSON object of an answer as it goes by; the latest model wins."""

    model: str | None = None
    finish_reasons: list[str] = field(default_factory=list)

    def observe(self, payload: object) -> None:
        if not isinstance(payload, dict):
            return
        for holder in (payload, payload.get("message"), payload.get("response")):
            if isinstance(holder, dict):
                self._read_object(holder)
        delta = payload.get("delta")
        if isinstance(delta, dict):
            self._reason(delta.get("stop_reason"))  # anthropic message_delta
        choices = payload.get("choices")
        if isinstance(choices, list):
            for choice in choices[:_MAX_REASONS]:
                if isinstance(choice, dict):
                    self._reason(choice.get("finish_reason"))

    def _read_object(self, holder: dict[str, object]) -> None:
        model = _token(holder.get("model"))
        if model is not None:
            self.model = model
        self._reason(holder.get("stop_reason"))
        if holder.get("object") == "response":
            status = holder.get("status")
            details = holder.get("incomplete_details")
            if status == "incomplete" and isinstance(details, dict):
                self._reason(details.get("reason"))
            elif status in ("completed", "failed", "cancelled"):
                self._reason(status)

    def _reason(self, value: object) -> None:
        reason = _token(value)
        if reason is not None and len(self.finish_reasons) < _MAX_REASONS:
            self.finish_reasons.append(reason)
