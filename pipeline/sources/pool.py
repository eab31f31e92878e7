"""The poller's process pool: feed parsing and full-text extraction run there, off the
event loop, so one slow or hostile document never stalls the other feeds.

The pool survives its own failures: a worker process that dies (killed, out of memory)
breaks a ``ProcessPoolExecutor`` for good, so the pool is rebuilt and the job retried once;
a job that runs over its timeout has its processes killed and the pool rebuilt. Its size
comes from the CPUs this process may really use (affinity and cgroup quota)."""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar

import structlog

from pipeline import metrics
from pipeline.errors import BadInputError
from pipeline.sources.parse import ParsedFeed, parse_feed_safely

log = structlog.get_logger(__name__)
T = TypeVar("T")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs the cgroup quota allows (cgroup v2 ``cpu.max``, else v1 CFS files); None when
    there is no quota."""
    try:
        quota, period = (root / "cpu.max").read_text(encoding="ascii").split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text(encoding="ascii"))
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text(encoding="ascii"))
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def usable_cpus(root: Path = CGROUP_ROOT) -> int:
    """CPUs this process may run on (its affinity), capped by the cgroup quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        cpus = min(cpus, math.ceil(limit))
    return max(1, cpus)


def parse_pool(workers: int = 0) -> ProcessPoolExecutor:
    """A process pool of ``workers`` processes (0: one per usable CPU), started by a
    forkserver that has the parser imported already (spawn where there is no forkserver)."""
    workers = workers or usable_cpus()
    if "forkserver" in multiprocessing.get_all_start_methods():
        forkserver = multiprocessing.get_context("forkserver")
        forkserver.set_forkserver_preload(["pipeline.sources.parse"])
        return ProcessPoolExecutor(max_workers=workers, mp_context=forkserver)
    spawn = multiprocessing.get_context("spawn")  # pragma: no cover - no forkserver
    return ProcessPoolExecutor(max_workers=workers, mp_context=spawn)


def parse_job(content: bytes, kwargs: dict[str, Any]) -> ParsedFeed | BadInputError:
    """Parse a feed in a pool process; the error comes back as a value (it pickles)."""
    return parse_feed_safely(content, **kwargs)


class PoolJobError(BadInputError):
    """A document whose job killed its pool process twice, or ran over its timeout."""


class ParsePool:
    """Runs jobs in a process pool that is rebuilt when it breaks or a job hangs; at most
    one job per process at a time, so the timeout starts when the job does.

    ``executor`` (tests) is used as given and never rebuilt. ``broken`` holds the reason
    from a failure until the next job succeeds, for ``/health``."""

    def __init__(
        self, workers: int = 0, *, timeout: float = 60.0, executor: Executor | None = None
    ) -> None:
        self.workers = workers or usable_cpus()
        self.timeout = timeout
        self._executor = executor
        self._own = executor is None
        self.restarts = 0
        self.broken: str | None = None
        # Jobs are handed to the pool only when a process is free, so the timeout
        # measures the job, not its wait behind others (no feed fails by waiting).
        self._free = asyncio.Semaphore(self.workers)

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            self._executor = parse_pool(self.workers)
        return self._executor

    def health(self) -> dict[str, Any]:
        return {"workers": self.workers, "restarts": self.restarts, "broken": self.broken}

    async def run(self, source: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a pool process. Raises PoolJobError (naming ``source``) when the
        job kills its process twice or runs over the timeout; the pool is fit again after."""
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            executor = self.executor
            try:
                async with self._free:
                    result = await asyncio.wait_for(
                        loop.run_in_executor(executor, fn, *args), self.timeout
                    )
            except BrokenProcessPool:
                self._rebuild(executor, "a pool process died")
                if attempt == 2:
                    raise PoolJobError(source, "the parser process died on it twice") from None
                continue
            except TimeoutError:
                self._rebuild(executor, f"a job ran over {self.timeout:g} s")
                raise PoolJobError(source, f"took longer than {self.timeout:g} s") from None
            self.broken = None
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _rebuild(self, executor: Executor, reason: str) -> None:
        """Kill ``executor``'s processes and let the next job start a new pool (once, even
        when several jobs saw the same failure)."""
        self.broken = reason
        if not self._own or self._executor is not executor:
            return
        self._executor = None
        self.restarts += 1
        metrics.PARSE_POOL_RESTARTS.inc()
        log.warning("poller.parse_pool_rebuilt", reason=reason, restarts=self.restarts)
        # ProcessPoolExecutor cannot stop a running job; its processes are killed instead.
        processes = getattr(executor, "_processes", None) or {}
        for process in list(processes.values()):
            process.kill()
        executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if self._executor is not None and self._own:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = None


__all__ = [
    "ParsePool",
    "PoolJobError",
    "cgroup_cpu_limit",
    "parse_job",
    "parse_pool",
    "usable_cpus",
]
