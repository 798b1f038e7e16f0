"""`StreamScanner.advance` (bytes in, a release point out) equals `feed`/`finish` on any split.

The SSE guard calls `advance` with the bytes it holds and forwards its own copy of
them when the answer says nothing changed; so on every split of every text, the input
up to each release point with each returned ``text`` put in place of its range must be
exactly what `feed` releases, with the same findings, under every action.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc.json_scan import JsonTextScan
from extproc.scan_plan import plan_for
from mesh.policy import ScanRule

DATA = Path(__file__).resolve().parents[2] / "data" / "scanner"
CASES = json.loads((DATA / "cases.json").read_text("utf-8"))
FRAGMENTS = sorted({c["text"] for c in CASES} | {" ", "\n", "é", "😀", "\ufffd", "AKIA",
                                                  "ops@example.org", "AKIAQ3EGUKZW5XYT7M2P"})
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def plan(action: str):  # type: ignore[no-untyped-def]
    rules = tuple(ScanRule(name, action) for name in ("secrets", "pii", "prompt-injection"))
    result = plan_for(rules, enforcing=True)
    assert result is not None
    return result


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def by_feed(scanner, parts: list[bytes]) -> tuple[bytes, list]:  # type: ignore[no-untyped-def]
    out, found = b"", []
    for part in parts:
        released, new = scanner.feed(part)
        out, found = out + released, found + new
    released, new = scanner.finish()
    return out + released, found + new


def by_advance(scanner, data: bytes, parts: list[bytes], as_array: bool) -> tuple[bytes, list]:  # type: ignore[no-untyped-def]
    out, found, upto = b"", [], 0
    for index, part in enumerate([*parts, b""]):
        given_bytes = np.frombuffer(part, dtype=np.uint8) if as_array and part else part
        release = scanner.advance(given_bytes, final=index == len(parts))
        assert release.upto >= upto, "the release point never moves back"
        out += data[upto : release.upto] if release.text is None else release.text
        upto, found = release.upto, found + release.findings
    return out, found


TEXTS = st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=8).map("".join)
ACTIONS = st.sampled_from(["redact", "block", "audit"])


@SETTINGS
@given(text=TEXTS, cuts=st.lists(st.integers(0, 10_000), max_size=12), action=ACTIONS,
       as_array=st.booleans(), invalid=st.booleans())
def test_advance_releases_what_feed_releases_on_any_split(
    text: str, cuts: list[int], action: str, as_array: bool, invalid: bool
) -> None:
    data = text.encode("utf-8")
    if invalid:
        data = data[: len(data) // 2] + b"\xff\xc3" + data[len(data) // 2 :]
    parts = pieces(data, cuts)
    the_plan = plan(action)
    assert by_advance(the_plan.stream(), data, parts, as_array) == by_feed(the_plan.stream(),
                                                                           parts)


@SETTINGS
@given(text=TEXTS, cuts=st.lists(st.integers(0, 10_000), max_size=12), action=ACTIONS)
def test_a_json_channel_advances_in_source_bytes_like_its_feed(
    text: str, cuts: list[int], action: str
) -> None:
    data = json.dumps({"note": text, "n": [1, True]}).encode()
    parts = pieces(data, cuts)
    the_plan = plan(action)
    hidden = {k for k, v in the_plan.actions.items() if v in ("redact", "block")}
    blocking = {k for k, v in the_plan.actions.items() if v == "block"}

    def scan() -> JsonTextScan:
        return JsonTextScan(the_plan.stream(), hidden, blocking)

    assert by_advance(scan(), data, parts, False) == by_feed(scan(), parts)
