"""The model that answered and why it stopped, read from each API's JSON, whole or streamed."""

from __future__ import annotations

import pytest

from extproc.llm.response_facts import ResponseFacts

CASES = [
    pytest.param(
        [{"object": "chat.completion", "model": "gpt-4o-2024-08-06",
          "choices": [{"index": 0, "finish_reason": "stop"},
                      {"index": 1, "finish_reason": "length"}]}],
        "gpt-4o-2024-08-06", ["stop", "length"], id="chat-whole",
    ),
    pytest.param(
        [{"model": "gpt-4o",
          "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]},
         {"model": "gpt-4o", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
         {"model": "gpt-4o", "choices": [], "usage": {"prompt_tokens": 1}}],
        "gpt-4o", ["tool_calls"], id="chat-stream",
    ),
    pytest.param(
        [{"type": "message_start", "message": {"model": "claude-x", "stop_reason": None}},
         {"type": "message_delta", "delta": {"stop_reason": "end_turn"}}],
        "claude-x", ["end_turn"], id="anthropic-stream",
    ),
    pytest.param(
        [{"type": "message", "model": "claude-x", "stop_reason": "max_tokens"}],
        "claude-x", ["max_tokens"], id="anthropic-whole",
    ),
    pytest.param(
        [{"type": "response.created", "response": {"object": "response", "model": "gpt-5",
                                                    "status": "in_progress"}},
         {"type": "response.completed", "response": {"object": "response", "model": "gpt-5",
                                                      "status": "completed"}}],
        "gpt-5", ["completed"], id="responses-stream",
    ),
    pytest.param(
        [{"object": "response", "model": "gpt-5", "status": "incomplete",
          "incomplete_details": {"reason": "max_output_tokens"}}],
        "gpt-5", ["max_output_tokens"], id="responses-incomplete",
    ),
    pytest.param(
        # What is not a short plain token is never recorded: it could be content.
        [{"model": "gpt-4o with a secret AKIA...", "choices": [{"finish_reason": "x" * 200}]},
         {"choices": [{"finish_reason": 7}]}, "not an object", None],
        None, [], id="non-tokens-ignored",
    ),
]


@pytest.mark.parametrize(("payloads", "model", "reasons"), CASES)
def test_the_facts_of_an_answer_are_read_from_its_json(
    payloads: list[object], model: str | None, reasons: list[str]
) -> None:
    facts = ResponseFacts()
    for payload in payloads:
        facts.observe(payload)
    assert (facts.model, facts.finish_reasons) == (model, reasons)
