"""Recall and false positives per family on the prompt-injection development set.

Run `python tests/data/scanner/injection_report.py [-v]` (also part of
`make bench`). The set is `injection_dev.jsonl`, made by
`make_injection_dev.py`; every text is scanned with all scanners at once,
as `weir scan` does by default. A positive counts as found when a finding
of its family's scanner lands in it; a negative is a false positive when
any finding of that scanner does. Both splits are reported: rules were
tuned on "tune", and "holdout" is the check that they generalise.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

DEV = Path(__file__).parent / "injection_dev.jsonl"


@dataclass
class FamilyScore:
    kind: str
    total: int = 0
    flagged: int = 0
    examples: list = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.flagged / self.total if self.total else 0.0


def evaluate(path: Path = DEV) -> dict[tuple[str, str], FamilyScore]:
    """(split, family) -> score; `rate` is recall for positives, FP rate for negatives."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from extproc.scanner import Scanner
    from extproc.scanner.rules import SCANNERS

    scanner = Scanner.for_scanners(SCANNERS)
    scores: dict[tuple[str, str], FamilyScore] = {}
    for line in path.read_text("utf-8").splitlines():
        rec = json.loads(line)
        sc = scores.setdefault((rec["split"], rec["family"]), FamilyScore(rec["kind"]))
        hits = [f for f in scanner.scan(rec["text"]) if f.scanner == rec["scanner"]]
        sc.total += 1
        if hits:
            sc.flagged += 1
        if bool(hits) != (rec["kind"] == "positive"):
            sc.examples.append((hits[0].rule if hits else None, rec["text"][:160]))
    return scores


def totals(scores: dict[tuple[str, str], FamilyScore], split: str, kind: str) -> FamilyScore:
    out = FamilyScore(kind)
    for (s, _), sc in scores.items():
        if s == split and sc.kind == kind:
            out.total += sc.total
            out.flagged += sc.flagged
    return out


def render(
    scores: dict[tuple[str, str], FamilyScore],
    verbose: bool = False,
    holdout_examples: bool = False,
) -> str:
    """The table; `verbose` lists misses and false positives (of the holdout split only when
    `holdout_examples`: looking at them while tuning would defeat the holdout)."""
    lines = ["| split | family | kind | n | recall / FP rate |", "|---|---|---|---:|---:|"]
    by_split: dict[str, list] = defaultdict(list)
    for (split, family), sc in sorted(scores.items()):
        by_split[split].append((family, sc))
    for split in ("tune", "holdout"):
        for family, sc in sorted(by_split[split], key=lambda x: (x[1].kind != "positive", x[0])):
            label = "recall" if sc.kind == "positive" else "FP"
            lines.append(f"| {split} | {family} | {label} | {sc.total} | {sc.rate:.3f} |")
            if verbose and (split == "tune" or holdout_examples):
                lines += [f"|  |  | miss/FP {rule} | | {text!r} |" for rule, text in sc.examples]
        pos, neg = totals(scores, split, "positive"), totals(scores, split, "negative")
        lines.append(f"| {split} | **all positives** | recall | {pos.total} | {pos.rate:.3f} |")
        lines.append(f"| {split} | **all negatives** | FP | {neg.total} | {neg.rate:.3f} |")
    return "\n".join(lines)


def main() -> None:
    print(render(evaluate(), "-v" in sys.argv or "-vv" in sys.argv, "-vv" in sys.argv))


if __name__ == "__main__":
    main()
