"""XFCC header parsing: Envoy's element/pair/quote grammar, strictly."""

from __future__ import annotations

import pytest

from mesh.xfcc import MAX_ELEMENTS, MAX_HEADER_BYTES, XfccElement, XfccError, parse_xfcc

GW = "spiffe://cluster.local/ns/istio-system/sa/gw"
APP = "spiffe://cluster.local/ns/payments/sa/checkout"

PARSED = [
    pytest.param("", [], id="empty_header_has_no_elements"),
    pytest.param(
        f"By={GW};URI={APP}",
        [(("By", GW), ("URI", APP))],
        id="one_element",
    ),
    pytest.param(
        f'By={GW};Hash=abc123;Subject="CN=checkout,O=Acme";URI={APP};DNS=a.svc;DNS=b.svc',
        [
            (
                ("By", GW),
                ("Hash", "abc123"),
                ("Subject", "CN=checkout,O=Acme"),
                ("URI", APP),
                ("DNS", "a.svc"),
                ("DNS", "b.svc"),
            )
        ],
        id="every_key_with_repeated_dns",
    ),
    pytest.param(
        f"URI=spiffe://cluster.local/ns/evil/sa/x,By={GW};URI={APP}",
        [(("URI", "spiffe://cluster.local/ns/evil/sa/x"),), (("By", GW), ("URI", APP))],
        id="two_elements",
    ),
    pytest.param(
        'Subject="a;b=c,d";URI=x',
        [(("Subject", "a;b=c,d"), ("URI", "x"))],
        id="separators_inside_quotes_are_literal",
    ),
    pytest.param(
        r'Subject="CN=\"quoted\", O=x";URI=y',
        [(("Subject", 'CN="quoted", O=x'), ("URI", "y"))],
        id="escaped_quotes_inside_quotes",
    ),
    pytest.param(
        r'Subject="a\\";URI=y',
        [(("Subject", "a\\"), ("URI", "y"))],
        id="escaped_backslash_before_closing_quote",
    ),
    pytest.param(
        r'Subject="CN=a\,b"',
        [(("Subject", r"CN=a\,b"),)],
        id="other_backslashes_are_literal",
    ),
    pytest.param('Subject=""', [(("Subject", ""),)], id="empty_quoted_value"),
    pytest.param("Hash=", [(("Hash", ""),)], id="empty_bare_value"),
    pytest.param("x-custom=1;By=b", [(("x-custom", "1"), ("By", "b"))], id="unknown_keys_are_kept"),
    pytest.param(
        'By=a,By=b,By="c,d"',
        [(("By", "a"),), (("By", "b"),), (("By", "c,d"),)],
        id="three_elements",
    ),
]


@pytest.mark.parametrize(("header", "expected"), PARSED)
def test_well_formed_headers_parse_into_elements(
    header: str, expected: list[tuple[tuple[str, str], ...]]
) -> None:
    assert parse_xfcc(header) == [XfccElement(pairs) for pairs in expected]


REJECTED = [
    pytest.param('Subject="abc', "unterminated", id="unterminated_quote"),
    pytest.param(r'Subject="abc\"', "unterminated", id="escaped_final_quote_is_unterminated"),
    pytest.param("By", "without '='", id="missing_equals"),
    pytest.param("By=a;URI", "without '='", id="second_pair_missing_equals"),
    pytest.param("=value", "empty key", id="empty_key"),
    pytest.param("By=a;;URI=b", "empty pair", id="empty_pair"),
    pytest.param("By=a;", "empty pair", id="trailing_semicolon"),
    pytest.param("By=a,", "empty pair", id="trailing_comma"),
    pytest.param(",By=a", "empty pair", id="leading_comma"),
    pytest.param("By=a,,By=b", "empty pair", id="empty_element"),
    pytest.param('Subject="a"b', "after closing quote", id="text_after_closing_quote"),
    pytest.param('Subject=a"b"', "quote inside unquoted", id="quote_inside_bare_value"),
    pytest.param("U RI=x", "invalid character ' '", id="space_in_key"),
    pytest.param(" By=a", "invalid character ' '", id="leading_space_in_key"),
    pytest.param("By=a;By=b", "duplicate key 'By'", id="repeated_by"),
    pytest.param("By=a;by=b", "duplicate key 'by'", id="repeated_by_in_other_case"),
    pytest.param("Hash=a;Hash=b", "duplicate key 'Hash'", id="repeated_hash"),
    pytest.param("By=" + "a" * MAX_HEADER_BYTES, "longer than", id="over_16_KiB"),
    pytest.param(
        "By=" + "\u00e9" * (MAX_HEADER_BYTES // 2), "longer than", id="over_16_KiB_in_utf8_bytes"
    ),
    pytest.param(",".join(["By=a"] * (MAX_ELEMENTS + 1)), "more than 64", id="over_64_elements"),
]


@pytest.mark.parametrize(("header", "reason"), REJECTED)
def test_malformed_headers_are_rejected_with_a_reason(header: str, reason: str) -> None:
    with pytest.raises(XfccError) as caught:
        parse_xfcc(header)
    assert reason in caught.value.reason


def test_exactly_64_elements_are_accepted() -> None:
    assert len(parse_xfcc(",".join(["By=a"] * MAX_ELEMENTS))) == MAX_ELEMENTS


@pytest.mark.parametrize(
    ("pairs", "by", "uris", "dns"),
    [
        pytest.param((("By", "b"), ("URI", "u")), "b", ("u",), None, id="canonical_case"),
        pytest.param((("by", "b"), ("uri", "u")), "b", ("u",), None, id="lower_case_keys"),
        pytest.param(
            (("BY", "b"), ("Uri", "u1"), ("URI", "u2")),
            "b",
            ("u1", "u2"),
            None,
            id="mixed_case_repeated_uri",
        ),
        pytest.param((("DNS", "d1"), ("dns", "d2")), None, (), "d1", id="no_by_no_uri"),
    ],
)
def test_key_lookups_ignore_case(
    pairs: tuple[tuple[str, str], ...], by: str | None, uris: tuple[str, ...], dns: str | None
) -> None:
    element = XfccElement(pairs)
    assert element.by == by
    assert element.uris == uris
    assert element.get("dns") == dns
