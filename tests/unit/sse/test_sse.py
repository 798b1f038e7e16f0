"""The incremental SSE parser and serialiser (extproc/sse.py), case by case."""

from __future__ import annotations

import pytest

from extproc.sse import SseError, SseEvent, SseParser, serialize


def parse_all(stream: bytes, *, pieces: int = 0, **kwargs: int) -> list[SseEvent]:
    """Parse `stream` in one piece (pieces=0) or in pieces of `pieces` bytes, then finish()."""
    parser = SseParser(**kwargs)
    events: list[SseEvent] = []
    step = pieces or max(len(stream), 1)
    for at in range(0, len(stream), step):
        events += parser.feed(stream[at : at + step])
    events += parser.finish()
    return events


def view(event: SseEvent) -> tuple[object, ...]:
    return (event.event, event.data, event.id, event.retry, event.comments)


# (name, stream, expected parsed views)
PARSE_CASES = [
    ("one data line", b"data: hello\n\n", [(None, "hello", None, None, ())]),
    ("no space after the colon", b"data:hello\n\n", [(None, "hello", None, None, ())]),
    ("only one space is dropped", b"data:  two\n\n", [(None, " two", None, None, ())]),
    (
        "multi-line data joins with LF",
        b"data: a\ndata: b\ndata\n\n",
        [(None, "a\nb\n", None, None, ())],
    ),
    ("empty data line", b"data:\n\n", [(None, "", None, None, ())]),
    ("CRLF line endings", b"event: x\r\ndata: 1\r\n\r\n", [("x", "1", None, None, ())]),
    ("lone CR line endings", b"event: x\rdata: 1\r\r", [("x", "1", None, None, ())]),
    ("mixed line endings", b"data: a\r\ndata: b\rdata: c\n\n", [(None, "a\nb\nc", None, None, ())]),
    ("id and retry", b"id: 42\nretry: 3000\ndata: x\n\n", [(None, "x", "42", 3000, ())]),
    (
        "retry that is not digits is ignored",
        b"retry: 3s\ndata: x\n\n",
        [(None, "x", None, None, ())],
    ),
    ("id containing NUL is ignored", b"id: a\x00b\ndata: x\n\n", [(None, "x", None, None, ())]),
    ("the last event field wins", b"event: a\nevent: b\ndata: x\n\n", [("b", "x", None, None, ())]),
    (
        "unknown fields are ignored in the view",
        b"foo: bar\ndata: x\n\n",
        [(None, "x", None, None, ())],
    ),
    ("a comment-only block is an event", b": ping\n\n", [(None, None, None, None, ("ping",))]),
    (
        "comments keep their text",
        b":raw\n: spaced\ndata: x\n\n",
        [(None, "x", None, None, ("raw", "spaced"))],
    ),
    (
        "a stray blank line is an empty event",
        b"\ndata: x\n\n",
        [(None, None, None, None, ()), (None, "x", None, None, ())],
    ),
    (
        "a final event without blank line comes from finish",
        b"data: a\n\ndata: b",
        [(None, "a", None, None, ()), (None, "b", None, None, ())],
    ),
    ("a final event ending in one newline", b"data: b\n", [(None, "b", None, None, ())]),
    ("a leading BOM is skipped", b"\xef\xbb\xbfdata: x\n\n", [(None, "x", None, None, ())]),
    (
        "a BOM later on is content",
        b"data: a\n\n\xef\xbb\xbfdata: x\n\n",
        [(None, "a", None, None, ()), (None, None, None, None, ())],
    ),
    ("UTF-8 text", "data: café ✓ 😀\n\n".encode(), [(None, "café ✓ 😀", None, None, ())]),
    ("an empty stream", b"", []),
]


@pytest.mark.parametrize(
    ("name", "stream", "expected"), PARSE_CASES, ids=[c[0] for c in PARSE_CASES]
)
@pytest.mark.parametrize("pieces", [0, 1, 2, 3])
def test_parser_reads_each_case_the_same_in_any_piece_size(
    name: str, stream: bytes, expected: list[tuple[object, ...]], pieces: int
) -> None:
    events = parse_all(stream, pieces=pieces)
    assert [view(e) for e in events] == expected
    assert b"".join(serialize(e) for e in events) == stream


def test_a_bom_later_in_the_stream_is_kept_as_an_unknown_field_line() -> None:
    events = parse_all(b"data: a\n\n\xef\xbb\xbfdata: x\n\n")
    assert events[1].raw == b"\xef\xbb\xbfdata: x\n\n"


@pytest.mark.parametrize(
    ("stream", "line_ending"),
    [
        (b"data: x\n\n", b"\n"),
        (b"data: x\r\n\r\n", b"\r\n"),
        (b"data: x\r\r", b"\r"),
        (b": c\r\n\n", b"\r\n"),
    ],
)
def test_an_event_remembers_its_first_line_ending(stream: bytes, line_ending: bytes) -> None:
    assert parse_all(stream)[0].line_ending == line_ending


def test_an_event_ending_in_cr_waits_for_the_next_byte_because_it_may_be_lf() -> None:
    parser = SseParser()
    assert parser.feed(b"data: x\r\n\r") == []
    assert parser.held_bytes == len(b"data: x\r\n\r")
    [event] = parser.feed(b"\ndata: y")
    assert event.raw == b"data: x\r\n\r\n"
    assert parser.held_bytes == 7
    [last] = parser.finish()
    assert last.data == "y"


def test_an_event_ending_in_cr_is_released_by_a_following_non_lf_byte() -> None:
    parser = SseParser()
    assert parser.feed(b"data: x\r\r") == []
    [event] = parser.feed(b"d")
    assert event.raw == b"data: x\r\r"


def test_a_crlf_split_between_chunks_is_one_line_ending() -> None:
    parser = SseParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\n") == []
    [event] = parser.feed(b"\r\n")
    assert event.data == "a"
    assert event.raw == b"data: a\r\n\r\n"


def test_held_bytes_counts_the_incomplete_event() -> None:
    parser = SseParser()
    assert parser.feed(b"data: one\n\ndata: tw") != []
    assert parser.held_bytes == len(b"data: tw")
    parser.feed(b"o\n\n")
    assert parser.held_bytes == 0


def test_one_chunk_with_many_events_returns_them_in_order() -> None:
    stream = b"".join(b"data: %d\n\n" % i for i in range(100))
    assert [e.data for e in SseParser().feed(stream)] == [str(i) for i in range(100)]


# (name, stream, max_event_bytes, message fragment)
ERROR_CASES = [
    ("an incomplete event over the bound", b"data: " + b"x" * 100, 64, "exceeds 64 bytes"),
    ("a complete event over the bound", b"data: " + b"x" * 100 + b"\n\n", 64, "exceeds 64 bytes"),
    (
        "a long final event at finish",
        b"data: ok\n\ndata: " + b"x" * 70,
        64,
        "event at byte 10 exceeds",
    ),
    ("invalid UTF-8", b"data: ok\n\ndata: \xff\n\n", 1024, "invalid UTF-8 at byte 16"),
    ("a truncated UTF-8 sequence at finish", b"data: \xe2\x82", 1024, "invalid UTF-8 at byte 6"),
]


@pytest.mark.parametrize(
    ("name", "stream", "bound", "message"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES]
)
@pytest.mark.parametrize("pieces", [0, 1, 7])
def test_parser_fails_with_sse_error(
    name: str, stream: bytes, bound: int, message: str, pieces: int
) -> None:
    with pytest.raises(SseError, match=message):
        parse_all(stream, pieces=pieces, max_event_bytes=bound)


def test_an_event_exactly_at_the_bound_is_accepted() -> None:
    stream = b"data: " + b"x" * 56 + b"\n\n"
    assert len(stream) == 64
    assert parse_all(stream, pieces=5, max_event_bytes=64)[0].raw == stream


def test_a_failed_parser_keeps_failing() -> None:
    parser = SseParser()
    with pytest.raises(SseError):
        parser.feed(b"data: \xff\n\n")
    with pytest.raises(SseError, match="failed earlier"):
        parser.feed(b"data: fine\n\n")
    with pytest.raises(SseError, match="failed earlier"):
        parser.finish()


def test_feeding_after_finish_is_an_error() -> None:
    parser = SseParser()
    parser.finish()
    with pytest.raises(SseError, match="after finish"):
        parser.feed(b"data: x\n\n")


# (name, original, new data, expected bytes)
WITH_DATA_CASES = [
    ("plain", b"data: old\n\n", "new", b"data: new\n\n"),
    (
        "keeps event id and comments in place",
        b": c\nevent: e\ndata: old\nid: 1\n\n",
        "new",
        b": c\nevent: e\ndata: new\nid: 1\n\n",
    ),
    (
        "multi-line data becomes new lines",
        b"data: a\ndata: b\n\n",
        "x\ny\nz",
        b"data: x\ndata: y\ndata: z\n\n",
    ),
    (
        "keeps CRLF",
        b"event: e\r\ndata: old\r\n\r\n",
        "n1\nn2",
        b"event: e\r\ndata: n1\r\ndata: n2\r\n\r\n",
    ),
    ("keeps lone CR", b"data: old\r\r", "new", b"data: new\r\r"),
    ("keeps no-space style", b"data:old\n\n", "new", b"data:new\n\n"),
    ("adds a space when the value starts with one", b"data:old\n\n", " new", b"data:  new\n\n"),
    ("adds data to a comment-only block", b": ping\n\n", "x", b": ping\ndata: x\n\n"),
    ("keeps unknown fields", b"foo: 1\ndata: a\nbar\n\n", "b", b"foo: 1\ndata: b\nbar\n\n"),
    ("completes an event that had no blank line", b"data: a", "b", b"data: b\n\n"),
    ("empty data", b"data: a\n\n", "", b"data: \n\n"),
]


@pytest.mark.parametrize(
    ("name", "original", "new", "expected"), WITH_DATA_CASES, ids=[c[0] for c in WITH_DATA_CASES]
)
def test_with_data_rewrites_only_the_data_lines(
    name: str, original: bytes, new: str, expected: bytes
) -> None:
    [event] = parse_all(original)
    rebuilt = event.with_data(new)
    assert serialize(rebuilt) == expected
    assert rebuilt.data == new
    assert (rebuilt.event, rebuilt.id, rebuilt.comments) == (event.event, event.id, event.comments)
    # The rebuilt bytes parse back to the same event.
    assert [view(e) for e in parse_all(expected)] == [view(rebuilt)]


def test_with_data_keeps_a_leading_bom_in_front() -> None:
    [event] = parse_all(b"\xef\xbb\xbfdata: a\n\n")
    assert event.with_data("b").raw == b"\xef\xbb\xbfdata: b\n\n"


def test_build_makes_event_id_and_data_lines() -> None:
    event = SseEvent.build('{"a":1}\nmore', event="error", id="9", line_ending=b"\r\n")
    assert event.raw == b'event: error\r\nid: 9\r\ndata: {"a":1}\r\ndata: more\r\n\r\n'
    assert view(event) == ("error", '{"a":1}\nmore', "9", None, ())


def test_serialize_of_a_parsed_event_is_its_original_bytes() -> None:
    stream = b": hi\r\nevent:  x\r\ndata:y\r\nretry: 5\r\n\r\n"
    [event] = parse_all(stream)
    assert serialize(event) is event.raw
    assert event.raw == stream
