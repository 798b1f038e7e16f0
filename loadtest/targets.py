"""Issue 12's target table: four figures of one `make bench` run against target and moonshot.

| figure | target | moonshot |
|---|---|---|
| Weir ÷ do-nothing processor, throughput | ≥ 0.8× | ≥ 1.0× |
| Weir ÷ Envoy alone, throughput | ≥ 0.5× | ≥ 0.6× |
| Weir processor CPU per request ÷ do-nothing processor's | ≤ 1.5× | ≤ 1.1× |
| ``weir_message_seconds`` p99 at 32 streams | < 1 ms | < 0.3 ms |

`target_table` turns the measured figures (NaN when a setup was not run)
into rows with a verdict each: ``moonshot`` (both met), ``met``, ``missed``
or ``not measured``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "≥": operator.ge, "≤": operator.le, "<": operator.lt,
}


@dataclass(frozen=True)
class Target:
    key: str  # the figure's key in `ratios` / the JSON report
    title: str
    unit: str  # "×" or "ms"
    compare: str  # one of _COMPARE
    target: float
    moonshot: float


TARGETS = (
    Target("weir_over_bare", "Weir ÷ do-nothing processor, throughput", "×", "≥", 0.8, 1.0),
    Target("weir_over_envoy", "Weir ÷ Envoy alone, throughput", "×", "≥", 0.5, 0.6),
    Target("cpu_weir_over_bare",
           "Weir processor CPU per request ÷ do-nothing processor's", "×", "≤", 1.5, 1.1),
    Target("message_p99_ms", "`weir_message_seconds` p99 at 32 streams", "ms", "<", 1.0, 0.3),
)


@dataclass(frozen=True)
class TargetRow:
    target: Target
    measured: float
    verdict: str  # moonshot | met | missed | not measured

    def cells(self) -> tuple[str, str, str, str, str]:
        t = self.target
        digits = 3 if t.unit == "ms" else 2
        sep = " " if t.unit == "ms" else ""
        measured = "—" if math.isnan(self.measured) else f"{self.measured:.{digits}f}{sep}{t.unit}"
        return (t.title, measured, f"{t.compare} {t.target:g}{sep}{t.unit}",
                f"{t.compare} {t.moonshot:g}{sep}{t.unit}", self.verdict)


def verdict(target: Target, measured: float) -> str:
    if math.isnan(measured):
        return "not measured"
    compare = _COMPARE[target.compare]
    if compare(measured, target.moonshot) and compare(measured, target.target):
        return "moonshot"
    return "met" if compare(measured, target.target) else "missed"


def target_table(figures: Mapping[str, float]) -> list[TargetRow]:
    """One row per target, in the issue's order; a missing figure is ``not measured``."""
    rows = []
    for target in TARGETS:
        measured = float(figures.get(target.key, math.nan))
        rows.append(TargetRow(target, measured, verdict(target, measured)))
    return rows
