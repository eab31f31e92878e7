"""Faults on a cluster (issue 18): three KRaft brokers (RF 3, min ISR 2) and three
Elasticsearch nodes (one replica), real ``newswire worker`` processes (spaCy recogniser, so
they keep up on two cores), articles flowing while a broker, a node or a worker dies.

Each test ends with every article sent indexed exactly once (ids counted across the alias),
every worker alive, and prints its figures: sent, indexed, duplicates, ``resumed_s`` (from
the fault until the index grows again) and ``recover_s`` (from the fault, or the last restart
of a rolling restart, until every article sent is indexed)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

from pipeline.provision import run_setup
from pipeline.settings import Settings

if TYPE_CHECKING:
    from tests.plugins.cluster import ArticleFeed, Cluster
    from tests.plugins.worker_process import WorkerProcess

pytestmark = pytest.mark.cluster

ARTICLES = 300
#: Articles indexed before the fault: the flow is under way, and most is still to come.
BEFORE_FAULT = 40
LIMIT_S = 600.0


async def start_flow(
    cluster: Cluster,
    name: str,
    isolated: Any,
    tools: Any,
    workers: int,
    tmp_path: Path,
    articles: int = ARTICLES,
    batch: int = 5,
) -> tuple[Settings, list[WorkerProcess], ArticleFeed]:
    """Topics and index of its own (RF 3 / min ISR 2 / 1 replica), ``workers`` workers, and
    a feed of ``articles`` (``batch`` every half second) started; returns once
    ``BEFORE_FAULT`` articles are indexed."""
    settings = isolated(
        cluster.settings, name, batch_size=16, batch_seconds=0.5, topic_partitions=6
    )
    await run_setup(settings)
    assert await tools.replica_counts(settings, settings.topic_raw) == {3}
    started = [tools.worker_process(settings, tmp_path / f"worker-{n}.log") for n in range(workers)]
    for worker in started:
        worker.start()
    feed = tools.article_feed(
        settings, tools.make_articles(name, articles, seed=18), batch=batch, every=0.5
    )
    feed.start()
    await tools.wait_indexed(settings, started[0], BEFORE_FAULT, LIMIT_S, "the first articles", 1)
    assert tools.index_replicas(settings, settings.index_alias) == {1}
    return settings, started, feed


async def resumed_after(settings: Settings, since: float, tools: Any, workers: list[Any]) -> float:
    """Seconds from ``since`` until the index count grows past what it was then."""
    at_fault = await tools.index_count(settings) or 0

    async def grew() -> bool:
        for worker in workers:
            assert worker.alive(), worker.tail()
        return (await tools.index_count(settings) or 0) > at_fault

    await tools.wait_for(grew, LIMIT_S, "indexing to resume after the fault", every=0.5)
    return round(time.monotonic() - since, 1)


async def finish(
    name: str,
    settings: Settings,
    feed: ArticleFeed,
    workers: list[Any],
    since: float,
    tools: Any,
    **figures: Any,
) -> None:
    """Wait for the whole feed to be indexed, then check exactly once and every worker."""
    await feed.finish()
    await tools.wait_indexed(settings, workers[0], len(feed.sent), LIMIT_S, "every article", 1)
    recover_s = round(time.monotonic() - since, 1)
    await asyncio.sleep(3)  # a late duplicate would show up here
    for worker in workers:
        assert worker.alive(), worker.tail()
    ids = await tools.indexed_ids(settings)
    count = await tools.index_count(settings)
    assert count is not None
    tools.check_exactly_once(
        name, feed.sent, ids, count, recover_s=recover_s, workers=len(workers), **figures
    )


@pytest.fixture
def tools(
    worker_process: Any,
    article_feed: Any,
    make_articles: Any,
    wait_indexed: Any,
    index_count: Any,
    indexed_ids: Any,
    check_exactly_once: Any,
    wait_for: Any,
    leaders: Any,
    under_replicated: Any,
    primary_nodes: Any,
    cluster_health: Any,
    replica_counts: Any,
    index_replicas: Any,
) -> Any:
    """The shared helpers in one namespace (each is a plugin fixture)."""
    return SimpleNamespace(**locals())


async def test_sigkill_of_the_raw_topics_leader_mid_ingest(
    cluster: Cluster, isolated: Any, tools: Any, tmp_path: Path
) -> None:
    settings, workers, feed = await start_flow(cluster, "kill-leader", isolated, tools, 1, tmp_path)
    led = await tools.leaders(settings, settings.topic_raw)
    victim, partitions_led = led.most_common(1)[0]
    fault = time.monotonic()
    assert await asyncio.to_thread(cluster.local.kill, cluster.broker_name(victim))
    resumed_s = await resumed_after(settings, fault, tools, workers)
    restart_s = round(await asyncio.to_thread(cluster.up), 1)
    await finish(
        "cluster-kill-raw-leader", settings, feed, workers, fault, tools,
        broker=victim, partitions_led=partitions_led, resumed_s=resumed_s,
        restart_s=restart_s,
    )  # fmt: skip


async def test_sigkill_of_the_node_holding_the_primary_mid_ingest(
    cluster: Cluster, isolated: Any, tools: Any, tmp_path: Path
) -> None:
    settings, workers, feed = await start_flow(
        cluster, "kill-primary", isolated, tools, 1, tmp_path
    )
    holders = tools.primary_nodes(settings, settings.index_alias)
    assert holders, "no primary shard found behind the alias"
    victim = cluster.search_name(holders[0])
    fault = time.monotonic()
    assert await asyncio.to_thread(cluster.local.kill, victim)
    resumed_s = await resumed_after(settings, fault, tools, workers)
    restart_s = round(await asyncio.to_thread(cluster.up), 1)
    await finish(
        "cluster-kill-primary-node", settings, feed, workers, fault, tools,
        node=victim, resumed_s=resumed_s, restart_s=restart_s,
    )  # fmt: skip
    assert tools.cluster_health(settings)["number_of_nodes"] == 3


@pytest.mark.timeout(1800)  # six restarts, each waiting for full replication again
async def test_rolling_restart_of_every_broker_then_every_node_under_load(
    cluster: Cluster, isolated: Any, tools: Any, tmp_path: Path
) -> None:
    # articles flow through all six restarts (2 a second), and stop once the last is done
    settings, workers, feed = await start_flow(
        cluster, "rolling", isolated, tools, 1, tmp_path, articles=6000, batch=1
    )
    started = time.monotonic()
    steps: dict[str, float] = {}
    for broker in cluster.local.kafkas:
        step = time.monotonic()
        await asyncio.to_thread(cluster.local.stop_one, broker.name)
        await asyncio.to_thread(cluster.up)

        async def in_sync() -> bool:
            assert all(w.alive() for w in workers), workers[0].tail()
            return bool(await tools.under_replicated(settings) == 0)

        # the next broker goes only when every partition has its three copies again
        await tools.wait_for(in_sync, LIMIT_S, f"every partition in sync after {broker.name}")
        steps[broker.name] = round(time.monotonic() - step, 1)
    for node in cluster.local.searches:
        step = time.monotonic()
        await asyncio.to_thread(cluster.local.stop_one, node.name)
        await asyncio.to_thread(cluster.up)

        async def green() -> bool:
            assert all(w.alive() for w in workers), workers[0].tail()
            return bool(tools.cluster_health(settings).get("status") == "green")

        await tools.wait_for(green, LIMIT_S, f"the cluster green after {node.name}", every=2)
        steps[node.name] = round(time.monotonic() - step, 1)
    last_restart = time.monotonic()
    await feed.stop()
    await finish(
        "cluster-rolling-restart", settings, feed, workers, last_restart, tools,
        rolling_s=round(last_restart - started, 1), steps=steps,
    )  # fmt: skip


async def test_three_workers_one_killed_one_added_while_articles_flow(
    cluster: Cluster, isolated: Any, tools: Any, tmp_path: Path
) -> None:
    settings, workers, feed = await start_flow(cluster, "scale", isolated, tools, 3, tmp_path)
    fault = time.monotonic()
    workers[1].kill()
    survivors = [workers[0], workers[2]]
    added = tools.worker_process(settings, tmp_path / "worker-added.log")
    added.start()
    resumed_s = await resumed_after(settings, fault, tools, survivors)
    await finish(
        "cluster-worker-killed-and-added", settings, feed, [*survivors, added], fault, tools,
        resumed_s=resumed_s, killed=1, added=1,
    )  # fmt: skip
