"""Properties of the SSE parser: split invariance, byte-exact round trip, only SseError."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.sse import SseError, SseEvent, SseParser, serialize

EOLS = [b"\n", b"\r\n", b"\r"]

# Lines that exercise every rule: fields with and without the space, comments, unknown
# fields, no-colon lines, non-ASCII text.
line = st.one_of(
    st.builds(
        lambda name, sep, value: name + sep + value,
        st.sampled_from([b"data", b"event", b"id", b"retry", b"foo", b""]),
        st.sampled_from([b":", b": ", b":  "]),
        st.text(
            alphabet=st.characters(exclude_characters="\r\n", exclude_categories=["Cs"]),
            max_size=12,
        ).map(str.encode),
    ),
    st.sampled_from([b"data", b"retry: 15", b"id: 7", b": ping"]),
)
block = st.builds(
    lambda lines, eols: b"".join(line + eol for line, eol in zip(lines, eols, strict=False)),
    st.lists(line, min_size=1, max_size=4),
    st.lists(st.sampled_from(EOLS), min_size=4, max_size=4),
)
stream = st.builds(
    lambda blocks, eols, bom: (
        (b"\xef\xbb\xbf" if bom else b"")
        + b"".join(b + e for b, e in zip(blocks, eols, strict=False))
    ),
    st.lists(block, max_size=6),
    st.lists(st.sampled_from(EOLS), min_size=6, max_size=6),
    st.booleans(),
)


def cuts_of(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for point in points:
        pieces.append(data[last:point])
        last = point
    pieces.append(data[last:])
    return pieces


def parse(pieces: list[bytes], max_event_bytes: int = 1 << 20) -> list[SseEvent]:
    parser = SseParser(max_event_bytes=max_event_bytes)
    events: list[SseEvent] = []
    for piece in pieces:
        events += parser.feed(piece)
    return events + parser.finish()


@settings(deadline=None, max_examples=300)
@given(stream, st.lists(st.integers(min_value=0), max_size=12), st.binary(max_size=8))
def test_any_chunking_gives_the_same_events_and_the_same_bytes(
    data: bytes, cuts: list[int], tail: bytes
) -> None:
    # A tail without a final blank line checks the finish() path too.
    data += tail.replace(b"\xff", b"")
    try:
        whole = parse([data])
    except SseError:
        return  # the tail made invalid UTF-8; the error case is its own property
    assert parse(cuts_of(data, cuts)) == whole
    assert parse([bytes([b]) for b in data]) == whole
    assert b"".join(serialize(e) for e in whole) == data


@settings(deadline=None, max_examples=200)
@given(st.binary(max_size=200), st.lists(st.integers(min_value=0), max_size=8))
def test_arbitrary_bytes_raise_nothing_but_sse_error_and_split_the_same(
    data: bytes, cuts: list[int]
) -> None:
    outcomes: list[object] = []
    for pieces in ([data], cuts_of(data, cuts)):
        try:
            events = parse(pieces, max_event_bytes=64)
        except SseError:
            outcomes.append("error")
        else:
            assert b"".join(serialize(e) for e in events) == data
            outcomes.append(events)
    assert outcomes[0] == outcomes[1]


@settings(deadline=None, max_examples=200)
@given(
    block,
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r"), max_size=30),
)
def test_with_data_round_trips_through_the_parser(original: bytes, new: str) -> None:
    [event] = parse([original + b"\n"])[:1]
    rebuilt = event.with_data(new)
    [again] = parse([serialize(rebuilt)])
    assert again == rebuilt
    assert again.data == new
    assert (again.event, again.id, again.retry, again.comments) == (
        event.event,
        event.id,
        event.retry,
        event.comments,
    )
