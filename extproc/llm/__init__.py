"""Provider adapters, one module per LLM API, and the lookup from a request line to one."""

from __future__ import annotations

from extproc.llm.anthropic_messages import AnthropicMessages
from extproc.llm.base import (
    EMPTY_BODY_REASON,
    BadRequestBody,
    BadResponseBody,
    Channel,
    Delta,
    ErrorKind,
    LlmRequest,
    Locator,
    Provider,
    StreamEvent,
    TextPart,
    Usage,
    parse_json_object,
    parse_response_body,
)
from extproc.llm.openai_chat import OpenAIChatCompletions
from extproc.llm.openai_responses import OpenAIResponses

PROVIDERS: tuple[Provider, ...] = (OpenAIChatCompletions(), OpenAIResponses(), AnthropicMessages())

# Refusals on paths no adapter knows still need a body; OpenAI's shape is what most
# OpenAI-compatible clients (and curl users) expect.
FALLBACK_ERROR_FORMAT: Provider = PROVIDERS[0]


def strip_query(path: str) -> str:
    return path.split("?", 1)[0].split("#", 1)[0]


def provider_for(method: str, path: str) -> Provider | None:
    bare = strip_query(path)
    for provider in PROVIDERS:
        if provider.matches(method, bare):
            return provider
    return None


def error_format_for(path: str) -> Provider:
    """The provider whose error shape a refusal on `path` should use, whatever the method."""
    bare = strip_query(path)
    for provider in PROVIDERS:
        if getattr(provider, "path", None) == bare:
            return provider
    return FALLBACK_ERROR_FORMAT


__all__ = [
    "EMPTY_BODY_REASON",
    "PROVIDERS",
    "AnthropicMessages",
    "BadRequestBody",
    "BadResponseBody",
    "Channel",
    "Delta",
    "ErrorKind",
    "LlmRequest",
    "Locator",
    "OpenAIChatCompletions",
    "OpenAIResponses",
    "Provider",
    "StreamEvent",
    "TextPart",
    "Usage",
    "error_format_for",
    "parse_json_object",
    "parse_response_body",
    "provider_for",
]
