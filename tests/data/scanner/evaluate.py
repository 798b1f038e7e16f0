"""Score the scanner on the labelled corpus: recall and false-positive rate per category.

Run `python tests/data/scanner/evaluate.py [-v]`. The scan uses every
scanner at once, as `weir scan` does by default; a positive counts as found
when a finding of its category overlaps its labelled span, and a negative
counts as a false positive when any finding of its category lands in it.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

CORPUS = Path(__file__).parent / "corpus.jsonl"
CATEGORIES = ("secrets", "pii", "prompt-injection")


@dataclass
class Score:
    spans: int = 0
    found: int = 0
    negatives: int = 0
    false_positives: int = 0
    misses: Counter = field(default_factory=Counter)
    fp_examples: list = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.found / self.spans if self.spans else 1.0

    @property
    def fp_rate(self) -> float:
        return self.false_positives / self.negatives if self.negatives else 0.0


def evaluate(corpus: Path = CORPUS) -> dict[str, Score]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from extproc.scanner import Scanner

    scanner = Scanner.for_scanners(CATEGORIES)
    scores = {c: Score() for c in CATEGORIES}
    for line in corpus.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        sc = scores[rec["category"]]
        hits = [f for f in scanner.scan(rec["text"]) if f.scanner == rec["category"]]
        if rec["kind"] == "positive":
            for start, end in rec["spans"]:
                sc.spans += 1
                if any(f.start < end and start < f.end for f in hits):
                    sc.found += 1
                else:
                    sc.misses[rec["format"]] += 1
        else:
            sc.negatives += 1
            if hits:
                sc.false_positives += 1
                sc.fp_examples.append((hits[0].rule, rec["text"][:100]))
    return scores


def main() -> None:
    verbose = "-v" in sys.argv
    for cat, sc in evaluate().items():
        print(
            f"{cat:18s} recall {sc.recall:.3f} ({sc.found}/{sc.spans})  "
            f"false positives {sc.fp_rate:.3%} ({sc.false_positives}/{sc.negatives})"
        )
        if verbose:
            for fmt, n in sc.misses.most_common():
                print(f"    missed {n} x {fmt}")
            for rule, text in sc.fp_examples[:15]:
                print(f"    FP {rule}: {text!r}")


if __name__ == "__main__":
    main()
