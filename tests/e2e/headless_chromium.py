"""Debian's Chromium, headless, as the e2e tests drive it: the rendered DOM and a screenshot.

Chromium's own `--dump-dom` and `--screenshot` modes, with a virtual-time budget
so the page's fetch of /inventory and its drawing finish first: no driver, no
protocol client. The flags keep it off this machine's closed network.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars",
)
SETTLE_MS = 4000  # virtual time: the page fetches /inventory at once and draws


def binary() -> str | None:
    return CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")


def _run(url: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    chromium = binary()
    assert chromium, "chromium is missing: `make test` installs Debian's chromium"
    with tempfile.TemporaryDirectory(prefix="weir-chromium-") as profile:
        return subprocess.run(
            [chromium, *FLAGS, f"--user-data-dir={profile}",
             f"--virtual-time-budget={SETTLE_MS}", *args, url],
            capture_output=True, text=True, timeout=timeout, check=False,
        )


def dump_dom(url: str) -> str:
    """The page's DOM after its scripts ran, serialised as HTML."""
    result = _run(url, "--dump-dom")
    assert result.returncode == 0 and "<html" in result.stdout, result.stderr[-2000:]
    return result.stdout


def screenshot(url: str, path: Path, size: tuple[int, int] = (1400, 900)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    result = _run(url, f"--screenshot={path}", f"--window-size={size[0]},{size[1]}")
    assert result.returncode == 0 and path.exists() and path.stat().st_size > 10_000, (
        result.stderr[-2000:]
    )
    return path
