"""`weir scan` memory is bounded: a 50 MB worst case runs under a fixed RSS cap.

The worst case is the input with the most findings per byte: one card number
per line, 2.5 million of them. Before blockwise scanning, `weir scan` held
the whole text and every finding, 2.7 GB for this file. Now the input is read
in 1 MiB blocks and each finding is written as it is found, so the peak RSS is
the interpreter with numba and the compiled rules (about 150 MB) plus a
block's worth of state. The cap, `RSS_CAP_MB`, is documented in the README;
the test also bounds what the big file adds over a one-line one.

This is the slowest unit test (about 35 s on an idle two-core machine): the
scanner does the full work for each of the 2.5 million findings. The text
format keeps the output side cheap; every format shares the same scan path.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RSS_CAP_MB = 256
GROWTH_CAP_MB = 100
SIZE = 50 * 1000 * 1000
LINE = b"4111 1111 1111 1111\n"
ROOT = Path(__file__).resolve().parents[3]


def test_a_50_mb_file_of_card_numbers_is_scanned_under_the_rss_cap(tmp_path: Path) -> None:
    big = tmp_path / "cards.txt"
    lines = SIZE // len(LINE)
    with big.open("wb") as fh:
        block = LINE * 50_000
        for _ in range(lines // 50_000):
            fh.write(block)
    assert big.stat().st_size == SIZE

    # The same command on a tiny file first: it fills numba's and the rule tables' on-disk
    # caches, and its peak is the fixed cost the big file must not grow much beyond.
    tiny = tmp_path / "tiny.txt"
    tiny.write_bytes(LINE)
    base_rc, base_findings, _, base_peak = _scan(tiny)
    assert (base_rc, base_findings) == (1, 1)

    returncode, findings, leaked, peak_mb = _scan(big)
    assert returncode == 1
    assert findings == lines  # every card found and written, none lost
    assert not leaked
    assert peak_mb < RSS_CAP_MB, f"peak RSS {peak_mb:.0f} MB (a one-line file: {base_peak:.0f} MB)"
    # What the input adds is a block's worth of state, not a function of its size.
    assert peak_mb - base_peak < GROWTH_CAP_MB, f"{peak_mb:.0f} MB vs {base_peak:.0f} MB"


# The child reports its own peak: VmHWM belongs to the process image after exec, whereas
# ru_maxrss from wait4 keeps the high-water mark of the forked copy of this (large) pytest
# process, which is not what `weir scan` uses.
_CHILD = """
import sys
from extproc.scanner.cli import main
code = main(sys.argv[1:])
sys.stdout.flush()
with open("/proc/self/status") as fh:
    peak = next(line for line in fh if line.startswith("VmHWM:"))
sys.stderr.write(peak)
sys.exit(code)
"""


def _scan(path: Path) -> tuple[int, int, bool, float]:
    """Exit code, findings written, whether a card's text was, and the peak RSS in MB."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, "--format", "text", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.stdout is not None and proc.stderr is not None
    findings = 0
    leaked = False
    while chunk := proc.stdout.read(1 << 20):
        findings += chunk.count(b"\n")
        leaked = leaked or b"4111 1111" in chunk
    err = proc.stderr.read().decode()
    proc.wait()
    [peak_kb] = [line.split()[1] for line in err.splitlines() if line.startswith("VmHWM:")]
    return proc.returncode, findings, leaked, int(peak_kb) / 1024
