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
from extproc.request_path import normalise_path

PROVIDERS: tuple[Provider, ...] = (OpenAIChatCompletions(), OpenAIResponses(), AnthropicMessages())

# Refusals on paths no adapter knows still need a body; OpenAI's shape is what most
# OpenAI-compatible clients (and curl users) expect.
FALLBACK_ERROR_FORMAT: Provider = PROVIDERS[0]


def strip_query(path: str) -> str:
    return path.split("?", 1)[0].split("#", 1)[0]


# How an API's path ends under a provider's own prefix (Azure's /openai/deployments/x,
# Groq's /openai, Gemini's /v1beta/openai). Anthropic's keeps its /v1: a bare
# `.../messages` is also OpenAI's assistants API (/v1/threads/{id}/messages).
_API_SUFFIXES = {
    "openai.chat_completions": "/chat/completions",
    "openai.responses": "/responses",
    "anthropic.messages": "/v1/messages",
}


def _api_suffix(provider: Provider) -> str:
    return _API_SUFFIXES.get(provider.name, provider.path)


def provider_for(method: str, path: str, *, ai_host: bool = False) -> Provider | None:
    """The adapter for a request line, matched on the path's normal form.

    `path` is normalised first (`extproc.request_path`: percent-decoding, dot
    segments, duplicate slashes ...), so ``/v1/chat/%63ompletions`` is chat
    completions. On a known AI host (`ai_host`) a path that ends in an API's own
    segments also matches (``/openai/v1/chat/completions``,
    ``/openai/deployments/x/chat/completions``): providers put their APIs under
    prefixes of their own. Elsewhere only the canonical ``/v1/...`` paths do, so
    an ordinary service's ``/api/messages`` is not taken for Anthropic's.
    """
    if method.upper() != "POST":
        return None
    canonical = normalise_path(path).canonical
    for provider in PROVIDERS:
        if canonical == provider.path or (ai_host and canonical.endswith(_api_suffix(provider))):
            return provider
    return None


def provider_named(name: str) -> Provider | None:
    for provider in PROVIDERS:
        if provider.name == name:
            return provider
    return None


def error_format_for(path: str) -> Provider:
    """The provider whose error shape a refusal on `path` should use, whatever the method."""
    canonical = normalise_path(path).canonical
    for provider in PROVIDERS:
        if canonical == provider.path or canonical.endswith(_api_suffix(provider)):
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
    "provider_named",
]
