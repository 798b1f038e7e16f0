"""The public Python API: construction, caching, custom rules and deny-lists."""

from __future__ import annotations

import dataclasses

import pytest

from extproc.scanner import Finding, Rule, RuleError, Scanner, StreamScanner, deny_list, warm_up


def test_the_same_rule_set_gives_the_same_scanner_object() -> None:
    a = Scanner.for_scanners(["pii", "secrets"])
    b = Scanner.for_scanners(["secrets", "pii", "secrets"])
    assert a is b
    assert Scanner.from_rules(a.rules) is a


def test_different_rule_sets_have_different_digests() -> None:
    assert Scanner.for_scanners(["pii"]).digest != Scanner.for_scanners(["secrets"]).digest


def test_unknown_scanner_names_are_rejected() -> None:
    with pytest.raises(RuleError, match="unknown scanner"):
        Scanner.for_scanners(["secrets", "malware"])
    with pytest.raises(RuleError):
        Scanner.for_scanners([])


def test_findings_are_frozen_values() -> None:
    f = Finding("secrets", "jwt", 1, 5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.start = 2  # type: ignore[misc]
    assert f == Finding("secrets", "jwt", 1, 5)


def test_a_custom_rule_from_policy_is_scanned_and_redacted() -> None:
    rule = Rule(
        id="ticket-id",
        scanner="custom",
        pattern=r"TICKET-[0-9]{4,8}",
        keywords=("TICKET-",),
    )
    sc = Scanner.from_rules([rule])
    text = "see TICKET-20451 and TICKET-12"
    assert [(f.scanner, f.rule, text[f.start : f.end]) for f in sc.scan(text)] == [
        ("custom", "ticket-id", "TICKET-20451")
    ]
    assert sc.redact(text) == "see [REDACTED:ticket-id] and TICKET-12"


def test_a_deny_list_matches_whole_words_through_normalisation() -> None:
    sc = Scanner.from_rules([deny_list(["Project Falcon", "zeus"], rule_id="codenames")])
    text = "About ＰＲＯＪＥＣＴ  falcon and Zeus, not zeusian."
    got = [text[f.start : f.end] for f in sc.scan(text)]
    assert got == ["ＰＲＯＪＥＣＴ  falcon", "Zeus"]


def test_custom_rules_without_keywords_are_scanned_in_full() -> None:
    rule = Rule(id="hex-blob", scanner="custom", pattern="[0-9a-f]{12}", left="[^0-9a-f]",
                right="[^0-9a-f]")  # fmt: skip
    sc = Scanner.from_rules([rule])
    assert [f.rule for f in sc.scan("x deadbeef0123 y")] == ["hex-blob"]


def test_stream_returns_a_stream_scanner_with_a_hold_bound() -> None:
    st = Scanner.for_scanners(["secrets"]).stream()
    assert isinstance(st, StreamScanner)
    assert st.held_bytes == 0
    assert st.max_hold_bytes > 0


def test_warm_up_can_be_called_twice() -> None:
    warm_up()
    warm_up()
