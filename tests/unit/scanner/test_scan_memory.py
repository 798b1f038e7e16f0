"""`weir scan` memory is bounded: a 50 MB worst case runs under a fixed RSS cap.

The worst case is the input with the most findings per byte: one card number
per line, 2.5 million of them. Before blockwise scanning, `weir scan` held
the whole text and every finding, 2.7 GB for this file. Now the input is read
in 1 MiB blocks and each finding is written as it is found, so the peak RSS is
the interpreter with numba and the compiled rules (about 150 MB) plus a
block's worth of state. The cap, `RSS_CAP_MB`, is documented in the README.

This is the slowest unit test (about 35 s on an idle two-core machine): the
scanner does the full work for each of the 2.5 million findings. The text
format keeps the output side cheap; every format shares the same scan path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

RSS_CAP_MB = 256
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

    proc = subprocess.Popen(
        [sys.executable, "-m", "extproc.scanner.cli", "--format", "text", str(big)],
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
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)

    assert proc.returncode == 1, err
    assert findings == lines  # every card found and written, none lost
    assert not leaked
    peak_mb = usage.ru_maxrss / 1024  # kilobytes on Linux
    assert peak_mb < RSS_CAP_MB, f"peak RSS {peak_mb:.0f} MB"
