"""Every fuzz target runs its seeds in `make test`, so the targets keep working between
`make fuzz` runs; the crash inputs the fuzzer found are seeds too (regressions)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

TARGETS = sorted(p.stem for p in Path(__file__).parent.glob("fuzz_*.py"))


@pytest.mark.parametrize("name", TARGETS)
def test_the_target_accepts_its_seeds(name: str) -> None:
    target = importlib.import_module(name)
    assert target.SEEDS
    for seed in target.SEEDS:
        target.TestOneInput(seed)
