"""The body sniffer: which bodies are LLM calls, shaped as which API."""

from __future__ import annotations

import json

import pytest

from extproc.body_shape import (
    ANTHROPIC,
    OPENAI_CHAT,
    OPENAI_RESPONSES,
    UNREADABLE_API,
    TopLevelKeys,
    cannot_name_a_model,
    json_object_start,
    plain_json_start,
    sniff,
)

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        (b"", None),
        (b"  \r\n\t", None),
        (b"{", True),
        (b'  {"a"', True),
        (b"\xef\xbb\xbf{", True),  # UTF-8 byte-order mark
        (b"{\x00\"\x00", True),  # UTF-16-LE
        (b"\x00{", True),  # UTF-16-BE
        (b"[1, 2]", False),
        (b'"text"', False),
        (b"--boundary\r\nContent-Disposition", False),
        (b"\x89PNG\r\n", False),
        (b"\x1f\x8b\x08", False),  # gzip
        (b"model=gpt-4o&messages=x", False),
    ],
)
def test_only_a_body_that_may_open_a_json_object_is_held_for_sniffing(
    prefix: bytes, expected: bool | None
) -> None:
    assert json_object_start(prefix) is expected


@pytest.mark.parametrize(
    ("document", "headers", "api"),
    [
        ({"model": "m", "messages": MESSAGES}, (), OPENAI_CHAT),
        ({"model": "m", "messages": MESSAGES}, (("anthropic-version", "2023-06-01"),), ANTHROPIC),
        ({"model": "m", "messages": MESSAGES, "system": "be nice", "max_tokens": 5}, (), ANTHROPIC),
        ({"model": "m", "messages": MESSAGES, "anthropic_version": "x"}, (), ANTHROPIC),
        ({"model": "m", "input": "hi"}, (), OPENAI_RESPONSES),
        ({"model": "m", "input": [{"role": "user", "content": "hi"}]}, (), OPENAI_RESPONSES),
        ({"model": "m", "prompt": {"id": "pmpt_1", "variables": {"a": "b"}}}, (), OPENAI_RESPONSES),
        ({"model": "m", "prompt": "Say hi"}, (), UNREADABLE_API),
        ({"model": "m", "prompt": ["a", "b"]}, (), UNREADABLE_API),
        ({"model": 7, "messages": MESSAGES}, (), OPENAI_CHAT),  # judged, then a clear 400
        ({"Model": "m", "Messages": MESSAGES}, (), UNREADABLE_API),  # ASP.NET binds any case
        ({"MODEL": "m", "input": "hi"}, (), UNREADABLE_API),
        ({"model": "m", "messages": "not a list"}, (), OPENAI_CHAT),
    ],
)
def test_an_llm_call_is_recognised_by_its_shape(
    document: dict[str, object], headers: tuple[tuple[str, str], ...], api: str
) -> None:
    shape = sniff(json.dumps(document).encode(), headers)
    assert shape is not None and shape.api == api
    assert shape.reason


@pytest.mark.parametrize(
    "body",
    [
        {"messages": MESSAGES},  # no model
        {"model": "m"},  # nothing to say
        {"model": "m", "text": "hi"},
        {"data": {"model": "m", "messages": MESSAGES}},  # nested: a dataset, not a call
        {"event": "deploy", "input": {"x": 1}},
        [{"model": "m", "messages": MESSAGES}],
    ],
)
def test_ordinary_json_is_not_an_llm_call(body: object) -> None:
    assert sniff(json.dumps(body).encode(), ()) is None


def test_escaped_key_names_are_read_as_the_keys_they_spell() -> None:
    body = b'{"mod\\u0065l": "gpt-5", "m\\u0065ssages": []}'
    shape = sniff(body, ())
    assert shape is not None and shape.api == OPENAI_CHAT


def test_a_utf16_llm_call_is_still_recognised() -> None:
    body = json.dumps({"model": "m", "messages": MESSAGES}).encode("utf-16")
    shape = sniff(body, ())
    assert shape is not None and shape.api == OPENAI_CHAT


def test_json_a_lenient_server_might_read_as_an_llm_call_is_taken_for_one() -> None:
    body = b'{"model": "m", "messages": [{"role": "user", "content": "hi"},],}'  # trailing commas
    shape = sniff(body, ())
    assert shape is not None and shape.api == OPENAI_CHAT
    assert sniff(b'{"broken": ', ()) is None


@pytest.mark.parametrize(
    ("body", "settled"),
    [
        (b'{"order": 1, "items": [1, 2, 3]}', True),
        (b'{"modelYear": 2024}', False),  # the word occurs: parse to be sure
        (b'{"MODEL": 1}', False),
        (b'{"mod\\u0065l": 1}', False),  # an escape might spell it
        ('{"a": 1}'.encode("utf-16"), False),
    ],
)
def test_a_body_that_cannot_name_a_model_is_settled_without_a_parse(
    body: bytes, settled: bool
) -> None:
    assert cannot_name_a_model(body) is settled


def test_plain_json_start_is_utf8_without_a_byte_order_mark() -> None:
    assert plain_json_start(b'{"a": 1}')
    assert not plain_json_start(b"\xef\xbb\xbf{")
    assert not plain_json_start('{"a"'.encode("utf-16-le"))


def _keys_of(body: bytes, chunk: int) -> TopLevelKeys:
    reader = TopLevelKeys()
    for start in range(0, len(body), chunk):
        reader.feed(body[start : start + chunk])
    return reader


BODY = json.dumps(
    {
        "pad": "x\\\"y" * 50 + "\\",
        "nested": {"model": "no", "list": [1, {"messages": []}, "]}"]},
        "mod\u0065l": "gpt-5",
        "messages": [{"role": "user", "content": "{\"input\": 1}"}],
    }
).encode()


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, len(BODY)], ids=lambda n: f"{n}-byte-chunks")
def test_top_level_keys_are_read_in_any_chunking_and_only_at_the_top(chunk: int) -> None:
    reader = _keys_of(BODY, chunk)
    assert reader.keys == {"pad", "nested", "model", "messages"}
    assert reader.llm_keys == {"model", "messages"}
    assert not reader.malformed


def test_an_escaped_key_split_across_chunks_is_decoded() -> None:
    reader = _keys_of(b'{"pad": 1, "mod\\u0065l": 2}', 1)
    assert "model" in reader.keys


def test_a_second_concatenated_object_is_read_too() -> None:
    reader = _keys_of(b'{"pad": 1} {"model": "m", "messages": []}', 5)
    assert reader.llm_keys == {"model", "messages"}


def test_llm_keys_are_found_in_any_letter_case() -> None:
    assert _keys_of(b'{"pad": 1, "Model": 2}', 4).llm_keys == {"model"}


def test_a_closer_with_nothing_open_is_malformed() -> None:
    reader = _keys_of(b'{"a": 1}}', 3)
    assert reader.malformed
