"""The policy in force for a running server, and its reload from the file on disk.

A policy is in force only once it is *servable*: parsed, validated and every
workload's scan plans compiled (`load_and_compile`, the same step `weir policy
check` runs). Nothing is left to compile on the request path, so the first
request after a reload pays nothing, and a rule set that cannot compile
refuses the policy instead of failing every call of that workload.

Reload polls the file's identity (device, inode, size, mtime) instead of using
inotify: Kubernetes updates a mounted ConfigMap by swapping a symlink
(`..data`), which a stat of the path follows reliably, and polling also works
on every filesystem a pod may mount. A file that fails is logged with its
precise error and counted; the last good policy stays in force.

A reload runs in a worker *process*, not a thread: parsing a 1 MB YAML file and
building a deny-list automaton are pure Python and take up to seconds, and a
thread would hold the GIL for that long in 5 ms slices, stealing them from the
event loop that carries every open stream. The process is spawned once, on the
first reload, kept, and runs at a lower CPU priority than the server.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import os
import pickle
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from extproc.metrics import Metrics
from extproc.scan_plan import PolicyPlans, compile_plans
from mesh.policy import Policy, PolicyError, load_policy

log = logging.getLogger("weir.policy")

_FileStamp = tuple[int, int, int, int]
WORKER_NICENESS = 10


def load_and_compile(path: str | os.PathLike[str]) -> tuple[Policy, PolicyPlans]:
    """Everything a policy file must pass before it is served; a failure is a PolicyError."""
    policy = load_policy(path)
    return policy, compile_plans(policy)


def _load_in_worker(path: str) -> tuple[Any, ...]:
    """`load_and_compile` in the worker process, with its PolicyError made picklable.

    A PolicyError's constructor takes (file, path, reason), which pickle's default
    for exceptions does not replay; its attributes travel as they are instead.
    """
    try:
        return ("ok", *load_and_compile(path))
    except PolicyError as exc:
        return ("invalid", type(exc), dict(vars(exc)), exc.args)


def _rebuilt_error(cls: type[PolicyError], attributes: dict[str, Any], args: Any) -> PolicyError:
    exc = cls.__new__(cls)
    exc.args = args
    vars(exc).update(attributes)
    return exc


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
        self._plans: PolicyPlans | None = None
        self._stamp: _FileStamp | None = None
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self.last_error: PolicyError | None = None

    @property
    def current(self) -> Policy:
        if self._policy is None:
            raise RuntimeError("no policy loaded")
        return self._policy

    @property
    def plans(self) -> PolicyPlans:
        """The scan plans of `current`, compiled when it was loaded."""
        if self._plans is None:
            raise RuntimeError("no policy loaded")
        return self._plans

    @property
    def loaded(self) -> bool:
        return self._policy is not None

    def load_initial(self) -> Policy:
        """Load at start-up, in this thread; a bad file here is fatal (raises PolicyError)."""
        self._stamp = _stamp(self.path)
        policy, plans = load_and_compile(self.path)
        self._install(policy, plans)
        return policy

    def reload(self) -> bool:
        """Load the file again in this thread. True if a new policy is now in force."""
        self._stamp = _stamp(self.path)
        try:
            policy, plans = load_and_compile(self.path)
        except PolicyError as exc:
            return self._reject(exc)
        return self._accept(policy, plans)

    async def refresh(self) -> bool:
        """`reload`, with the loading and compiling done in the worker process."""
        self._stamp = _stamp(self.path)
        try:
            result = await self._in_worker()
        except (BrokenProcessPool, OSError, RuntimeError, pickle.PicklingError, TypeError) as exc:
            # The worker died, could not start, or could not send its result back (a
            # policy object that does not pickle): compile in a thread rather than keep
            # a stale policy. Slower for the event loop, never wrong.
            log.warning("policy worker unavailable (%s); compiling in a thread", exc)
            self._pool = None
            result = await asyncio.to_thread(_load_in_worker, os.fspath(self.path))
        if result[0] == "invalid":
            return self._reject(_rebuilt_error(*result[1:]))
        _, policy, plans = result
        return self._accept(policy, plans)

    def changed_on_disk(self) -> bool:
        return _stamp(self.path) != self._stamp

    async def watch(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            if not self.changed_on_disk():
                continue
            try:
                await self.refresh()
            except Exception:
                # A bug, not a bad file: still never stop watching, never drop the policy.
                self._metrics.policy_reloads.labels("invalid").inc()
                log.exception("policy reload failed; keeping the policy in force")

    def close(self) -> None:
        """Stop the worker process, if one was started."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def _in_worker(self) -> tuple[Any, ...]:
        if self._pool is None:
            # spawn, not fork: forking a process that runs gRPC's threads is unsafe.
            # Niced, so that on a saturated node the compile takes the CPU the
            # streams leave, not the other way round.
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=os.nice,
                initargs=(WORKER_NICENESS,),
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, _load_in_worker, os.fspath(self.path))

    def _reject(self, exc: PolicyError) -> bool:
        self.last_error = exc
        self._metrics.policy_reloads.labels("invalid").inc()
        log.error(
            "policy reload rejected; keeping digest %s in force: %s",
            self._policy.digest if self._policy else "none",
            exc,
        )
        return False

    def _accept(self, policy: Policy, plans: PolicyPlans) -> bool:
        if self._policy is not None and policy.digest == self._policy.digest:
            self.last_error = None
            return False
        self._install(policy, plans)
        return True

    def _install(self, policy: Policy, plans: PolicyPlans) -> None:
        previous = self._policy
        self._policy = policy
        self._plans = plans
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
