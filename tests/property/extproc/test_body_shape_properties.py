"""The incremental top-level key reader agrees with a JSON parser, in any chunking,
and the path normal form is idempotent."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.body_shape import TopLevelKeys
from extproc.request_path import normalise_path

# Keys and strings full of what the reader must step over: quotes, backslashes,
# brackets, commas and escapes that spell key names.
_TRICKY = st.text(alphabet=st.sampled_from('ab"\\{}[],:m\u00e9\n\u2028'), max_size=8)
_SCALARS = st.none() | st.booleans() | st.integers() | _TRICKY
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TRICKY, inner, max_size=4),
    max_leaves=20,
)


@settings(deadline=None, max_examples=300)
@given(
    document=st.dictionaries(_TRICKY, _VALUES, max_size=6),
    ascii_only=st.booleans(),
    cuts=st.lists(st.integers(min_value=1, max_value=9), max_size=40),
)
def test_top_level_keys_match_the_parsed_document_in_any_chunking(
    document: dict[str, object], ascii_only: bool, cuts: list[int]
) -> None:
    body = json.dumps(document, ensure_ascii=ascii_only).encode()
    reader = TopLevelKeys()
    pos = 0
    for size in cuts:
        reader.feed(body[pos : pos + size])
        pos += size
    reader.feed(body[pos:])
    assert reader.keys == set(document)
    assert not reader.malformed
    assert reader.closed


@settings(deadline=None, max_examples=200)
@given(document=st.dictionaries(_TRICKY, _VALUES, max_size=6), data=st.data())
def test_no_strict_prefix_of_an_object_reads_as_closed(
    document: dict[str, object], data: st.DataObject
) -> None:
    # What an oversize body forwards before its verdict must never be a whole document.
    body = json.dumps(document).encode()
    cut = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    reader = TopLevelKeys()
    reader.feed(body[:cut])
    assert not reader.closed


@settings(deadline=None, max_examples=300)
@given(
    st.text(alphabet=st.sampled_from("/.%2e5cF?#;aA\\v1"), max_size=30)
    | st.integers(min_value=0, max_value=12).map(lambda n: "/v1/%" + "25" * n + "2e%2e/x")
)
def test_the_path_normal_form_is_idempotent_and_rooted(raw: str) -> None:
    once = normalise_path(raw).canonical
    assert once.startswith("/")
    assert "//" not in once
    assert normalise_path(once).canonical == once
