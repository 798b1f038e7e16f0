"""`weir policy check` compiles every scan plan, as the server does before serving.

So a policy it accepts never fails at run time: a deny-list term that folds to
nothing, or terms whose automaton passes the compiler's state limit, are
refused here with the file, the rule's path and the reason, and exit code 2.
"""

from __future__ import annotations

import io
import random
import re
import string
from pathlib import Path

import pytest

from extproc.scan_plan import deny_list_problem
from extproc.scanner.dfa import MAX_STATES
from mesh.policy import MAX_DENY_TERM_CHARS, MAX_DENY_TERMS
from mesh.policy_cli import EXIT_INVALID, EXIT_OK, check


def write_policy(tmp_path: Path, terms: list[str], *, scanners: str = "") -> str:
    quoted = ", ".join('"' + t.encode("unicode_escape").decode().replace('"', '\\"') + '"'
                       for t in terms)
    path = tmp_path / "policy.yaml"
    path.write_text(
        "trustDomain: cluster.local\n"
        "workloads:\n"
        "  - name: app\n"
        "    match: [spiffe://cluster.local/ns/app/sa/app]\n"
        "    response:\n"
        f"{scanners}"
        f"      - {{scanner: deny-list, action: redact, terms: [{quoted}]}}\n"
    )
    return str(path)


def run_check(path: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = check(path, out, err)
    return code, out.getvalue(), err.getvalue()


def words(count: int, length: int, seed: int = 13) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(string.ascii_lowercase, k=length)) for _ in range(count)]


@pytest.mark.parametrize(
    ("term", "reason"),
    [
        pytest.param("\u200b", "zero-width", id="zero_width_space"),
        pytest.param("\u200d\ufeff\u2060", "zero-width", id="only_invisible_characters"),
        pytest.param("\u00ad", "zero-width", id="soft_hyphen"),
        pytest.param("\u673a\u5bc6", "no character the scanner reads", id="unfoldable_letters"),
    ],
)
def test_a_term_that_folds_to_nothing_readable_is_refused_with_its_path(
    tmp_path: Path, term: str, reason: str
) -> None:
    path = write_policy(tmp_path, ["secret-project", term])
    code, out, err = run_check(path)
    assert code == EXIT_INVALID and out == ""
    assert re.match(rf"{re.escape(str(path))}:\d+: "
                    rf"workloads\[0\]\.response\[0\]\.terms\[1\]: ", err), err
    assert reason in err


def test_the_largest_deny_list_the_limits_allow_is_refused_precisely_and_at_once(
    tmp_path: Path,
) -> None:
    path = write_policy(tmp_path, words(MAX_DENY_TERMS, MAX_DENY_TERM_CHARS))
    code, _, err = run_check(path)
    assert code == EXIT_INVALID
    assert re.match(rf"{re.escape(str(path))}:\d+: "
                    rf"workloads\[0\]\.response\[0\]\.terms: ", err), err
    # 5,000 random 200-letter terms: one state per distinct prefix, about a million.
    assert "the terms need 99" in err and f"the limit is {MAX_STATES:,}" in err


def exactly(states: int) -> list[str]:
    """Terms whose automaton needs exactly `states` states (prefix count + dead + start).

    Numbered random terms ("000qwe...", "001rty...") add a known number of prefixes
    each; terms of one repeated letter, which no other term starts with, fill the rest.
    """
    tail = MAX_DENY_TERM_CHARS - 3

    def prefixes(n: int) -> int:  # of n numbered terms: the digit levels, then the letters
        return -(-n // 100) + -(-n // 10) + n + n * tail

    count = max(n for n in range(1, 1000) if prefixes(n) + 2 <= states)
    need = states - 2 - prefixes(count)
    fill = []
    for letter in "xyzwvu":
        take = min(need, MAX_DENY_TERM_CHARS)
        if take:
            fill.append(letter * take)
        need -= take
    assert need == 0
    return [f"{i:03d}" + w for i, w in enumerate(words(count, tail))] + fill


def test_the_largest_automaton_the_compiler_allows_is_accepted(tmp_path: Path) -> None:
    terms = exactly(MAX_STATES)
    assert deny_list_problem(terms) is None
    code, out, err = run_check(write_policy(tmp_path, terms))
    assert (code, err) == (EXIT_OK, "")
    assert ": ok (1 workload" in out


def test_one_state_past_the_limit_is_refused_before_compiling(tmp_path: Path) -> None:
    path = write_policy(tmp_path, exactly(MAX_STATES + 1))
    code, _, err = run_check(path)
    assert code == EXIT_INVALID
    assert f"the terms need {MAX_STATES + 1:,} automaton states" in err


def test_a_deny_list_that_fits_alone_but_not_beside_the_injection_pack_is_refused(
    tmp_path: Path,
) -> None:
    terms = exactly(MAX_STATES - 1000)
    path = write_policy(
        tmp_path, terms, scanners="      - {scanner: prompt-injection, action: block}\n"
    )
    code, _, err = run_check(path)
    assert code == EXIT_INVALID
    assert re.match(rf"{re.escape(str(path))}:\d+: "
                    rf"workloads\[0\]\.response\[1\]\.terms: ", err), err
    assert "(prompt-injection, deny-list) together need more than" in err
