"""Fixtures: one threaded fake upstream per test module, and SDK clients pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest
from fake_upstream_harness import ThreadedUpstream


@pytest.fixture(scope="module")
def upstream_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedUpstream]:
    up = ThreadedUpstream(tmp_path_factory.mktemp("log") / "requests.jsonl")
    yield up
    up.close()


@pytest.fixture
def upstream(upstream_module: ThreadedUpstream) -> ThreadedUpstream:
    upstream_module.server.clear()
    return upstream_module


@pytest.fixture
def oai(upstream: ThreadedUpstream) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{upstream.url}/v1", api_key="x", max_retries=0)


@pytest.fixture
def claude(upstream: ThreadedUpstream) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=upstream.url, api_key="x", max_retries=0)
