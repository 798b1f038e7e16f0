"""`SseEvent.with_data`'s fast path for token events must equal the general rebuild."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extproc.sse import SseEvent, SseParser

texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


def parsed(raw: bytes) -> SseEvent:
    parser = SseParser()
    [event] = parser.feed(raw) + parser.finish()
    return event


@given(
    name=st.none() | st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1,
                             max_size=12),
    old=texts.filter(lambda t: "\n" not in t and "\r" not in t),
    new=texts,
    eol=st.sampled_from(["\n", "\r\n"]),
)
def test_the_fast_path_equals_the_general_rebuild(
    name: str | None, old: str, new: str, eol: str
) -> None:
    head = "" if name is None else f"event: {name}{eol}"
    event = parsed(f"{head}data: {old}{eol}{eol}".encode())
    fast = event.with_data(new)
    if "\n" not in new and "\r" not in new and not old.startswith("\ufeff"):
        assert event._simple_with_data(new) is not None  # the fast path was taken
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(SseEvent, "_simple_with_data", lambda self, data: None)
        general = event.with_data(new)
    assert fast == general
    assert parsed(fast.raw) == fast


@pytest.mark.parametrize("raw", [
    b": note\ndata: x\n\n", b"id: 7\ndata: x\n\n", b"data:x\n\n", b"data: a\ndata: b\n\n",
    b"\xef\xbb\xbfdata: x\n\n", b"retry: 10\ndata: x\n\n",
])
def test_other_shapes_take_the_general_path(raw: bytes) -> None:
    assert parsed(raw)._simple_with_data("y") is None


@given(data=st.text(st.characters(blacklist_categories=("Cs",)), max_size=40).filter(
    lambda t: "\n" not in t and "\r" not in t))
def test_a_single_data_line_block_parses_as_the_general_parser_does(data: str) -> None:
    from extproc.sse import _parse_block

    raw = f"data: {data}\n\n".encode()
    parser = SseParser()
    events = parser.feed(b"event: x\n\n" + raw)  # not the stream's first block (no BOM skip)
    assert events[1] == _parse_block(raw, raw.decode(), b"\n")
