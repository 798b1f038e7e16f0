"""The prompt-injection development set (tests/data/scanner/injection_dev.jsonl), per family.

The set and its provenance are described in make_injection_dev.py; the
table is printed by injection_report.py (and by `make bench`). Rules were
tuned on the "tune" split; "holdout" is written from disjoint pools and
checked here too, so a rule that only memorises the tune split fails.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "data" / "scanner"
_spec = importlib.util.spec_from_file_location("injection_report", DATA / "injection_report.py")
assert _spec and _spec.loader
report = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = report
_spec.loader.exec_module(report)

ROWS = [json.loads(x) for x in (DATA / "injection_dev.jsonl").read_text("utf-8").splitlines()]
FAMILIES = sorted({(r["split"], r["family"], r["kind"]) for r in ROWS})
# Per-family floors: recall on every positive family, the false-positive ceiling on negatives.
RECALL = {"tune": 0.95, "holdout": 0.85}
FALSE_POSITIVES = 0.01


@pytest.fixture(scope="module")
def scores() -> dict:
    return report.evaluate()


def test_the_set_is_large_and_has_both_splits_and_kinds() -> None:
    assert len(ROWS) > 600
    for split in ("tune", "holdout"):
        kinds = {r["kind"] for r in ROWS if r["split"] == split}
        assert kinds == {"positive", "negative"}


def test_the_splits_share_no_text() -> None:
    tune = {r["text"] for r in ROWS if r["split"] == "tune"}
    assert not tune & {r["text"] for r in ROWS if r["split"] == "holdout"}


@pytest.mark.parametrize(("split", "family", "kind"), FAMILIES)
def test_each_family_meets_its_target(scores: dict, split: str, family: str, kind: str) -> None:
    sc = scores[(split, family)]
    if kind == "positive":
        assert sc.rate >= RECALL[split], sc.examples
    else:
        assert sc.rate <= FALSE_POSITIVES, sc.examples


@pytest.mark.parametrize("split", ["tune", "holdout"])
def test_overall_recall_and_false_positives(scores: dict, split: str) -> None:
    assert report.totals(scores, split, "positive").rate >= max(RECALL[split], 0.9)
    assert report.totals(scores, split, "negative").rate <= FALSE_POSITIVES
