"""The request path normal form: a table of raw paths and what Weir matches them as."""

from __future__ import annotations

import pytest

from extproc.llm import provider_for
from extproc.request_path import MAX_DECODE_ROUNDS, normalise_path

CASES = [
    ("/v1/chat/completions", "/v1/chat/completions", ""),
    ("/v1/chat/%63ompletions", "/v1/chat/completions", ""),
    ("/v1/chat%2Fcompletions", "/v1/chat/completions", ""),
    ("/v1/chat%2fcompletions", "/v1/chat/completions", ""),
    ("/v1/chat/%2563ompletions", "/v1/chat/completions", ""),  # double encoding
    ("/v1/chat/%252563ompletions", "/v1/chat/completions", ""),  # triple encoding
    ("//v1///chat//completions", "/v1/chat/completions", ""),
    ("/v1/./chat/./completions", "/v1/chat/completions", ""),
    ("/v1/x/../chat/completions", "/v1/chat/completions", ""),
    ("/v1/x/%2e%2e/chat/completions", "/v1/chat/completions", ""),
    ("/v1/x/..%2Fchat/completions", "/v1/chat/completions", ""),
    ("/../../v1/chat/completions", "/v1/chat/completions", ""),  # never above the root
    ("/v1/chat/completions/", "/v1/chat/completions", ""),
    ("/v1/chat/completions?stream=true", "/v1/chat/completions", "stream=true"),
    ("/v1/chat/completions#frag", "/v1/chat/completions", ""),
    ("/v1/chat/completions%3Fa=b", "/v1/chat/completions", "a=b"),  # a decoded '?'
    ("/v1/chat/completions;jsessionid=1", "/v1/chat/completions", ""),
    ("/v1\\chat\\completions", "/v1/chat/completions", ""),
    ("/V1/Chat/Completions", "/v1/chat/completions", ""),
    ("/v1/chat/compl%C3%A9tions", "/v1/chat/complétions", ""),
    ("/v1/chat/%FFcompletions", "/v1/chat/\ufffdcompletions", ""),  # not UTF-8: matches nothing
    ("", "/", ""),
    ("/", "/", ""),
    ("*", "/*", ""),
]


@pytest.mark.parametrize(("raw", "canonical", "query"), CASES, ids=[c[0] or "empty" for c in CASES])
def test_a_raw_path_normalises_to_the_form_any_server_might_route(
    raw: str, canonical: str, query: str
) -> None:
    normal = normalise_path(raw)
    assert normal.canonical == canonical
    assert normal.query == query
    assert normal.raw == raw


def test_the_normal_form_is_a_fixed_point() -> None:
    for raw, _, _ in CASES:
        once = normalise_path(raw).canonical
        assert normalise_path(once).canonical == once


def test_decoding_stops_after_a_bounded_number_of_rounds() -> None:
    raw = "/v1/chat/%" + "25" * (MAX_DECODE_ROUNDS + 3) + "63ompletions"
    # Still bounded work, and still not taken for chat completions past the bound.
    assert normalise_path(raw).canonical != "/v1/chat/completions"


def test_changed_says_whether_the_raw_path_was_already_normal() -> None:
    assert not normalise_path("/v1/chat/completions?x=1").changed
    assert normalise_path("/v1/chat/%63ompletions").changed


@pytest.mark.parametrize(
    ("path", "provider"),
    [
        ("/v1/chat/%63ompletions", "openai.chat_completions"),
        ("/v1//responses", "openai.responses"),
        ("/v1/x/../messages?beta=true", "anthropic.messages"),
        ("/v1/chat/completions/extra", None),
        ("/openai/v1/chat/completions", None),  # a provider prefix: only on an AI host
        ("/api/messages", None),
    ],
)
def test_provider_for_matches_the_normal_form_of_the_path(path: str, provider: str | None) -> None:
    found = provider_for("POST", path)
    assert (found.name if found else None) == provider


@pytest.mark.parametrize(
    ("path", "provider"),
    [
        ("/openai/v1/chat/completions", "openai.chat_completions"),
        ("/openai/deployments/gpt4o/chat/completions?api-version=1", "openai.chat_completions"),
        ("/openai/v1/responses", "openai.responses"),
        ("/v1beta/openai/chat/completions", "openai.chat_completions"),
        ("/v1/models", None),
        ("/v1/threads/thread_1/messages", None),  # OpenAI assistants, not Anthropic
        ("/anthropic/v1/messages", "anthropic.messages"),
    ],
)
def test_on_an_ai_host_a_provider_prefix_before_the_api_path_still_matches(
    path: str, provider: str | None
) -> None:
    found = provider_for("POST", path, ai_host=True)
    assert (found.name if found else None) == provider


def test_only_a_post_is_an_llm_call_by_its_path() -> None:
    assert provider_for("GET", "/v1/chat/completions") is None
    assert provider_for("post", "/v1/chat/completions") is not None
