"""Run one atheris target for a bounded time: `python tests/fuzz/run.py fuzz_sse [libFuzzer args]`.

The modules under test (`extproc`, `mesh`) are imported with coverage
instrumentation, except the numba scanner kernels, whose bytecode numba
compiles itself. The target's SEEDS are written to a fresh corpus directory,
so every run starts from realistic inputs. `make fuzz` runs every target.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import tempfile
from pathlib import Path

import atheris


def main() -> None:
    name, *args = sys.argv[1:]
    name = Path(name).stem
    sys.path.insert(0, str(Path(__file__).parent))
    # The scanner's njit kernels must keep their own bytecode: import the whole scanner
    # package first, uninstrumented.
    scanner = importlib.import_module("extproc.scanner")
    for module in pkgutil.walk_packages(scanner.__path__, "extproc.scanner."):
        importlib.import_module(module.name)
    with atheris.instrument_imports(include=["extproc", "mesh"]):
        target = importlib.import_module(name)
    corpus = Path(tempfile.mkdtemp(prefix=f"weir-{name}-corpus-"))
    for i, seed in enumerate(target.SEEDS):
        (corpus / f"seed-{i}").write_bytes(seed)
    atheris.Setup([sys.argv[0], *args, str(corpus)], target.TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
