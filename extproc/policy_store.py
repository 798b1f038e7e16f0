"""The policy in force for a running server, and its reload from the file on disk.

Reload polls the file's identity (device, inode, size, mtime) instead of using
inotify: Kubernetes updates a mounted ConfigMap by swapping a symlink
(`..data`), which a stat of the path follows reliably, and polling also works
on every filesystem a pod may mount. A file that fails validation is logged
with its precise error and counted; the last good policy stays in force.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from extproc.metrics import Metrics
from mesh.policy import Policy, PolicyError, load_policy

log = logging.getLogger("weir.policy")

_FileStamp = tuple[int, int, int, int]


def _stamp(path: Path) -> _FileStamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class PolicyStore:
    def __init__(self, path: str | os.PathLike[str], metrics: Metrics) -> None:
        self.path = Path(path)
        self._metrics = metrics
        self._policy: Policy | None = None
        self._stamp: _FileStamp | None = None
        self.last_error: PolicyError | None = None

    @property
    def current(self) -> Policy:
        if self._policy is None:
            raise RuntimeError("no policy loaded")
        return self._policy

    @property
    def loaded(self) -> bool:
        return self._policy is not None

    def load_initial(self) -> Policy:
        """Load at start-up; a bad file here is fatal (raises PolicyError)."""
        self._stamp = _stamp(self.path)
        policy = load_policy(self.path)
        self._install(policy)
        return policy

    def reload(self) -> bool:
        """Load the file again. True if a new policy is now in force."""
        stamp = _stamp(self.path)
        self._stamp = stamp
        try:
            policy = load_policy(self.path)
        except PolicyError as exc:
            self.last_error = exc
            self._metrics.policy_reloads.labels("invalid").inc()
            log.error(
                "policy reload rejected; keeping digest %s in force: %s",
                self._policy.digest if self._policy else "none",
                exc,
            )
            return False
        if self._policy is not None and policy.digest == self._policy.digest:
            return False
        self._install(policy)
        return True

    def changed_on_disk(self) -> bool:
        return _stamp(self.path) != self._stamp

    async def watch(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            if self.changed_on_disk():
                self.reload()

    def _install(self, policy: Policy) -> None:
        previous = self._policy
        self._policy = policy
        self.last_error = None
        self._metrics.policy_reloads.labels("ok").inc()
        if previous is not None:
            self._metrics.policy_info.remove(previous.digest, previous.source)
        self._metrics.policy_info.labels(policy.digest, policy.source).set(1)
        log.info(
            "policy in force: %s digest=%s workloads=%d mode=%s",
            policy.source,
            policy.digest,
            len(policy.workloads),
            policy.mode,
        )
