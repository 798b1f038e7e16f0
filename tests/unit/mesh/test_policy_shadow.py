"""Shadowed workload rules: decided exactly by automata, sampled past a size limit."""

from __future__ import annotations

import pytest

from mesh.policy import parse_policy
from mesh.policy_shadow import find_shadowed

TD = "spiffe://td/"


def _policy(*workloads: list[str]) -> str:
    lines = ["trustDomain: td", "workloads:"]
    for i, match in enumerate(workloads):
        patterns = ", ".join(f"'{m if m == 'unauthenticated' else TD + m}'" for m in match)
        lines.append(f"  - {{name: w{i}, match: [{patterns}]}}")
    return "\n".join(lines) + "\n"


def _shadowed(*workloads: list[str], **kw: int) -> list[tuple[str, tuple[str, ...], bool]]:
    policy = parse_policy(_policy(*workloads))
    return [(s.name, s.by, s.exact) for s in find_shadowed(policy, **kw)]


@pytest.mark.parametrize(
    ("workloads", "expected"),
    [
        pytest.param([["ns/a/*"], ["ns/a/sa/x"]], [("w1", ("w0",))], id="glob_covers_literal"),
        pytest.param([["ns/a/sa/x"], ["ns/a/*"]], [], id="literal_first_is_fine"),
        pytest.param(
            [["*"], ["ns/b/sa/y"], ["ns/*"]],
            [("w1", ("w0",)), ("w2", ("w0",))],
            id="catch_all_shadows_everything_after",
        ),
        pytest.param(
            [["ns/a*"], ["ns/b/*"], ["ns/a/sa/*", "ns/b/sa/*"]],
            [("w2", ("w0", "w1"))],
            id="covered_by_two_rules_together",
        ),
        pytest.param([["ns/a*"], ["ns/b/*"], ["ns/*/sa/y"]], [], id="a_gap_between_rules"),
        pytest.param(
            [["ns/a/*", "ns/*/b"], ["ns/a/b"]], [("w1", ("w0",))], id="two_patterns_of_one_rule"
        ),
        pytest.param(
            [["*/*"], ["ns/x"]], [("w1", ("w0",))], id="star_slash_star_covers_two_segments"
        ),
        pytest.param([["*/*/*"], ["ns/x"]], [], id="three_segments_do_not_cover_two"),
        pytest.param(
            [["unauthenticated"], ["unauthenticated", "ns/x"]], [], id="one_pattern_reachable"
        ),
        pytest.param(
            [["unauthenticated"], ["unauthenticated"]],
            [("w1", ("w0",))],
            id="unauthenticated_twice",
        ),
        pytest.param([["*"], ["unauthenticated"]], [], id="a_star_never_covers_unauthenticated"),
    ],
)
def test_shadowing_is_decided_exactly(
    workloads: list[list[str]], expected: list[tuple[str, tuple[str, ...]]]
) -> None:
    got = _shadowed(*workloads)
    assert [(name, by) for name, by, _ in got] == expected
    assert all(exact for _, _, exact in got)


CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_"


def test_only_valid_spiffe_ids_count_so_an_empty_segment_leaves_no_gap() -> None:
    # Every "ns/<c>..." is covered; only "ns/" is not, and it is no SPIFFE ID.
    assert _shadowed([f"ns/{c}*" for c in CHARS], ["ns/*"]) == [("w1", ("w0",), True)]
    assert _shadowed([f"ns/{c}*" for c in CHARS if c != "q"], ["ns/*"]) == []


def test_dot_segments_are_not_identities_so_they_leave_no_gap() -> None:
    # Everything but "ns/./x" and "ns/../x" is covered, and those are no SPIFFE IDs.
    covering = [f"ns/{c}*/x" for c in CHARS if c != "."]
    covering += [f"ns/.{c}*/x" for c in CHARS if c != "."]
    covering += [f"ns/..{c}*/x" for c in CHARS]
    assert _shadowed(covering, ["ns/*/x"]) == [("w1", ("w0",), True)]
    assert _shadowed(covering[1:], ["ns/*/x"]) == []


def test_past_the_state_limit_the_answer_is_sampled_and_says_so() -> None:
    assert _shadowed(["ns/a/*"], ["ns/a/sa/*/*"], max_states=3) == [("w1", ("w0",), False)]
    assert _shadowed(["ns/a/sa/x"], ["ns/a/*"], max_states=3) == []
