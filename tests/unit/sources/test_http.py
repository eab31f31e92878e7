"""The fetcher's per-host state stays bounded: limits exist only while used, and the DNS
cache is cleared after a set number of distinct hosts."""

from __future__ import annotations

import asyncio

from pipeline.sources.http import HostLimits, HostsSeen


async def test_a_host_limit_is_dropped_when_its_last_fetch_leaves() -> None:
    limits = HostLimits(per_host=2)
    for n in range(5000):  # months of distinct hosts, one after another
        async with limits.hold(f"host{n}.test"):
            assert len(limits) == 1
    assert len(limits) == 0


async def test_the_per_host_limit_still_holds_while_the_host_is_busy() -> None:
    limits = HostLimits(per_host=2)
    running = 0
    peak = 0
    release = asyncio.Event()

    async def fetch() -> None:
        nonlocal running, peak
        async with limits.hold("busy.test"):
            running += 1
            peak = max(peak, running)
            await release.wait()
            running -= 1

    tasks = [asyncio.create_task(fetch()) for _ in range(6)]
    await asyncio.sleep(0.05)
    assert running == 2 and len(limits) == 1  # four wait on the same semaphore
    release.set()
    await asyncio.gather(*tasks)
    assert peak == 2 and len(limits) == 0


async def test_hosts_in_flight_bound_the_map() -> None:
    limits = HostLimits(per_host=1)
    gate = asyncio.Event()

    async def fetch(host: str) -> None:
        async with limits.hold(host):
            await gate.wait()

    tasks = [asyncio.create_task(fetch(f"h{n % 10}.test")) for n in range(40)]
    await asyncio.sleep(0.05)
    assert len(limits) == 10
    gate.set()
    await asyncio.gather(*tasks)
    assert len(limits) == 0


def test_hosts_seen_asks_for_a_dns_cache_clear_past_the_cap() -> None:
    seen = HostsSeen(cap=3)
    assert [seen.note(h) for h in ("a", "b", "a", "c")] == [False, False, False, False]
    assert seen.note("d") is True  # a fourth distinct host: clear, start over
    assert seen.hosts == set()
    assert seen.note("e") is False
