"""Validators, one table per check: what passes, what does not, and why."""

from __future__ import annotations

import base64
import json
import zlib

import pytest

from extproc.scanner import validators as v


@pytest.mark.parametrize(
    ("digits", "ok"),
    [("4111111111111111", True), ("4111111111111112", False), ("378282246310005", True),
     ("6011111111111117", True), ("5555555555554444", True), ("1234567812345678", False)],
)  # fmt: skip
def test_luhn_accepts_valid_card_numbers_only(digits: str, ok: bool) -> None:
    assert v.luhn_ok(digits) is ok


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("4111 1111 1111 1111", "found"),
        ("4111-1111-1111-1111", "found"),
        ("3782 822463 10005", "found"),
        ("4111 1111-1111 1111", "rejected"),  # mixed separators
        ("41 11 11 11 11 11 11 11", "rejected"),  # not a card grouping
        ("4111 1111 1111 1112", "suppressed"),  # card-shaped, fails Luhn
        ("9111111111111111", "rejected"),  # no such issuer
        ("1234567890123", "rejected"),
    ],
)
def test_card_validation_needs_grouping_issuer_and_luhn(text: str, verdict: str) -> None:
    span = v.card(text)
    assert {None: "rejected", v.SUPPRESS: "suppressed"}.get(span, "found") == verdict


@pytest.mark.parametrize(
    ("text", "ok"),
    [("DE89 3704 0044 0532 0130 00", True), ("DE89370400440532013000", True),
     ("GB82WEST12345698765432", True), ("DE88370400440532013000", False),
     ("DE8937040044053201300", False), ("XX89370400440532013000", False)],
)  # fmt: skip
def test_iban_checks_country_length_and_mod_97(text: str, ok: bool) -> None:
    assert (v.iban(text) not in (None, v.SUPPRESS)) is ok


@pytest.mark.parametrize(
    ("text", "ok"),
    [("536-22-1234", True), ("536 22 1234", True), ("000-22-1234", False), ("666-22-1234", False),
     ("912-22-1234", False), ("536-00-1234", False), ("536-22-0000", False), ("536-22 1234", False),
     ("078-05-1120", False)],
)  # fmt: skip
def test_ssn_follows_area_group_and_serial_rules(text: str, ok: bool) -> None:
    assert (v.ssn(text) is not None) is ok


def _b64(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("token", "ok"),
    [
        (_b64({"alg": "HS256", "typ": "JWT"}) + "." + _b64({"sub": "1"}) + ".sig", True),
        (_b64({"alg": "none"}) + "." + _b64({"sub": "1"}) + ".", True),
        (_b64({"typ": "JWT"}) + "." + _b64({"sub": "1"}) + ".sig", False),  # no alg
        (_b64([1, 2]) + "." + _b64({"sub": "1"}) + ".sig", False),  # header not an object
        ("eyJub3QganNvbg." + _b64({"sub": "1"}) + ".sig", False),  # header not JSON
    ],
)
def test_jwt_needs_a_json_header_with_alg(token: str, ok: bool) -> None:
    assert (v.jwt(token) is not None) is ok


def test_a_github_checksum_is_recognised() -> None:
    body = "k3Lm9Qx7Rt2Vb8Np4Zc6Hj1Gk5We0Sd"[:30]
    check = v._base62(zlib.crc32(body.encode()) & 0xFFFFFFFF, 6)
    wrong = check[:-1] + ("a" if check[-1] != "a" else "b")
    assert v.crc32_base62_ok(body + check)
    assert not v.crc32_base62_ok(body + wrong)


@pytest.mark.parametrize(
    ("text", "ok"),
    [("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", True),
     ("ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", False),
     ("ghp_1234567890abcdefghijklmnopqrstuvwxyz", False),
     ("ghp_EXAMPLEexampleEXAMPLEexampleEXAMPLE1", False)],
)  # fmt: skip
def test_placeholder_tokens_are_not_secrets(text: str, ok: bool) -> None:
    assert (v.checksummed_token(text) is not None) is ok


def test_entropy_of_random_text_is_higher_than_of_repetitive_text() -> None:
    assert v.entropy("aaaaaaaa") == 0.0
    assert v.entropy("abcdabcd") == pytest.approx(2.0)
    assert v.entropy("Zx9Qw3Er7Ty1Ui5Op8As2Df") > 4.0


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("postgres://svc:Xk29!vLq@db.internal", "found"),
        ("https://user:password@example.com", "suppressed"),
        ("postgres://app:${DB_PASSWORD}@db", "suppressed"),
        ("redis://:s3cr3tPW@cache", "rejected"),  # no user
    ],
)
def test_url_credentials_ignore_placeholder_passwords(text: str, verdict: str) -> None:
    span = v.url_credentials(text)
    assert {None: "rejected", v.SUPPRESS: "suppressed"}.get(span, "found") == verdict


@pytest.mark.parametrize(
    ("text", "value"),
    [('api_key = "Zx9Qw3Er7Ty1Ui5Op8As2Df"', "Zx9Qw3Er7Ty1Ui5Op8As2Df"),
     ("token: get_token_from_environment", None),
     ("password=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", None),
     ("secret=aaaaaaaaaaaaaaaaaaaaaaaa", None)],
)  # fmt: skip
def test_keyword_secrets_report_only_random_looking_values(text: str, value: str | None) -> None:
    span = v.keyword_secret(text)
    assert (text[span[0] : span[1]] if span else None) == value


@pytest.mark.parametrize(
    ("text", "ok"),
    [("bob@acme.com", True), ("a.b+c@mail.example.co.uk", True), ("icon@2x.png", False),
     (".bob@acme.com", False), ("bob..x@acme.com", False), ("bob@-acme.com", False),
     ("bob@acme.c0m", False)],
)  # fmt: skip
def test_email_structure_and_top_level_domain(text: str, ok: bool) -> None:
    assert (v.email(text) is not None) is ok


@pytest.mark.parametrize(
    ("text", "ok"),
    [("+14155552671", True), ("(415) 555-2671", True), ("020 7946 0958", True),
     ("+33 1 42 68 53 00", True), ("0000 000 000", False), ("1234 5678", False),
     ("(415 555-2671", False), ("01234567890", False)],
)  # fmt: skip
def test_phone_numbers_need_plausible_digits_and_grouping(text: str, ok: bool) -> None:
    assert (v.phone(text) is not None) is ok


def test_tag_text_is_reported_but_a_flag_sequence_is_not() -> None:
    hidden = "".join(chr(0xE0000 + ord(c)) for c in "do evil")
    flag = "".join(chr(0xE0000 + ord(c)) for c in "gbeng") + "\U000e007f"
    assert v.tag_text(hidden) == (0, len(hidden))
    assert v.tag_text(flag) is None
