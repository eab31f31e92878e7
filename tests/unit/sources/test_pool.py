"""The parse pool with real processes: a killed worker or a hung job does not break the
parses after it, the pool is rebuilt and says so, and its size follows the usable CPUs."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from pipeline.sources.pool import ParsePool, PoolJobError, cgroup_cpu_limit, usable_cpus


def _pid() -> int:
    return os.getpid()


def _sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


async def test_a_killed_pool_process_does_not_break_later_parses() -> None:
    pool = ParsePool(2, timeout=30)
    try:
        victim = await pool.run("feed", _pid)
        os.kill(victim, signal.SIGKILL)  # as the OOM killer or an operator would
        await asyncio.sleep(0.2)
        # The job that meets the broken pool is retried on a new one, and so are later jobs.
        results = [await pool.run("feed", _pid) for _ in range(3)]
        assert victim not in results
        assert pool.restarts == 1
        assert pool.health()["broken"] is None  # a job succeeded since
    finally:
        pool.close()


async def test_a_job_that_kills_its_process_every_time_is_bad_input_and_reported() -> None:
    pool = ParsePool(1, timeout=30)
    try:
        with pytest.raises(PoolJobError, match="died on it twice") as info:
            await pool.run("https://feeds.example/hostile.xml", _die)
        assert info.value.source == "https://feeds.example/hostile.xml"
        assert pool.health()["broken"] == "a pool process died"  # what /health shows now
        assert await pool.run("next", _sleep, 0) == 0  # the next feed parses
        assert pool.health()["broken"] is None
    finally:
        pool.close()


async def test_a_job_over_its_timeout_is_stopped_and_the_pool_goes_on() -> None:
    pool = ParsePool(1, timeout=2)
    try:
        await pool.run("warm-up", _sleep, 0)
        started = time.monotonic()
        with pytest.raises(PoolJobError, match="took longer than 2 s"):
            await pool.run("slow", _sleep, 60)
        assert time.monotonic() - started < 30  # not the job's 60 s: its process was killed
        pool.timeout = 30  # room for the new pool's processes to start on a busy machine
        assert await pool.run("next", _sleep, 0) == 0
        assert pool.restarts == 1
    finally:
        pool.close()


def test_cgroup_quota_and_affinity_size_the_pool(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(tmp_path) is None  # no cgroup files: no quota
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(tmp_path) is None
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_limit(tmp_path) == 1.5
    assert usable_cpus(tmp_path) == min(2, len(os.sched_getaffinity(0)))
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert usable_cpus(tmp_path) == 1
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_limit(v1) is None
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    assert cgroup_cpu_limit(v1) == 3.0
