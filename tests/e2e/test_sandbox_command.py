"""`weir sandbox` (what `make demo` runs), as a user runs it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

WEIR = shutil.which("weir") or str(Path(sys.executable).parent / "weir")


def processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline and "pytest" not in cmdline:
            found.append(cmdline)
    return found


def test_the_sandbox_tour_runs_and_exits_zero(tmp_path: Path) -> None:
    result = subprocess.run(
        [WEIR, "sandbox", "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ALLOWED" in result.stdout and "DENIED" in result.stdout
    assert "PermissionDeniedError" in result.stdout
    assert "All stops behaved as expected." in result.stdout
    # The tour says why fewer events arrive than the upstream sent.
    assert "the upstream sent 42 text events of 2 bytes; Weir coalesced them into" in result.stdout
    assert "text-only events that arrive together are scanned as one" in result.stdout
    # Models used apart from those asked for in refused calls (gpt-5 never reached a model).
    assert "models used: claude-sonnet-4, gpt-4o; asked for in refused calls: gpt-4o, gpt-5" in (
        result.stdout
    )
    # The agent's scene: the mcp SDK's Client against the sandbox's MCPServer.
    agent = result.stdout[result.stdout.index("agent     MCP tools/list"):]
    assert "listed search_docs, get_status (delete_repo is not in its tools" in agent
    assert "search_docs answered \"3 results for 'mtls'\"\n    tool server saw 1 tool call(s)" in (
        agent
    )
    assert ("MCPError: weir: tool 'delete_repo' is not in workload 'support-agent' tools "
            "[search_docs, get_*]\n    tool server saw 0 tool call(s)") in agent
    assert "get_status is hidden from tools/list; calling it: MCPError: weir: tool " in agent
    assert "changed since it was pinned" in agent
    assert "get_status answered 'all green'\n    tool server saw 1 tool call(s)" in agent
    assert "MCP 127.0.0.1 delete_repo: 1 call(s) (deny=1)" in result.stdout
    assert "UNEXPECTED" not in result.stdout
    # A --workdir given without --keep is not removed, and the tour says so.
    assert f"{tmp_path / 'weir.log'} (kept after exit)" in result.stdout
    assert (tmp_path / "weir.log").exists()
    assert processes_mentioning(str(tmp_path)) == []


def test_interrupting_the_sandbox_stops_everything_it_started(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [WEIR, "sandbox", "--workdir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (tmp_path / "envoy.log").exists():
        time.sleep(0.05)
    assert (tmp_path / "envoy.log").exists(), "the sandbox never started Envoy"
    child.send_signal(signal.SIGINT)
    output, _ = child.communicate(timeout=60)
    assert child.returncode == 130, output
    assert "stopping the sandbox" in output
    assert processes_mentioning(str(tmp_path)) == []
