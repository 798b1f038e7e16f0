"""What the e2e tests read from Weir's admin port and how they change its policy file."""

from __future__ import annotations

import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from mesh.sandbox import MeshSandbox


def get(url: str) -> tuple[int, str]:
    """(status, body); (0, the error) when nothing answers, so asserts show why."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(exc)


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def _metrics(mesh: MeshSandbox) -> str:
    status, text = get(mesh.weir_admin_url("/metrics"))
    assert status == 200, text
    return text


def metric(mesh: MeshSandbox, prefix: str) -> float:
    """The sum of every sample whose line starts with `prefix` (0 when there is none)."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in _metrics(mesh).splitlines()
               if line.startswith(prefix))


def metric_matching(mesh: MeshSandbox, pattern: str) -> float:
    """The sum of every sample whose line matches the regular expression `pattern`."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in _metrics(mesh).splitlines()
               if re.match(pattern, line))


def write_atomically(path: os.PathLike[str], text: str) -> None:
    """Replace by rename, the way a Kubernetes ConfigMap volume updates."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
