"""Two worker processes share one story table in the search engine (issue 18): each story's
first two versions are sent at the same moment to the two partitions, so two workers take
them in the same second, before either's write is searchable, and each may found a cluster;
the check after the write makes the later founder adopt the earlier's cluster before either
is published, so both versions are indexed with one cluster, and later versions, on either
worker, join it too. With the session's Kafka, CoreNLP and Elasticsearch.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pipeline.kafka.client import encode, make_producer
from pipeline.models import RawArticle, Source
from pipeline.provision import run_setup
from pipeline.settings import Settings
from pipeline.sinks.engines import open_backend

if TYPE_CHECKING:
    from tests.plugins.worker_process import WorkerProcess

pytestmark = pytest.mark.integration

STORIES = 6
ASSIGNED = "Executing _on_partitions_assigned"


async def _send(settings: Settings, items: list[tuple[RawArticle, int]]) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        futures = [
            await producer.send(
                settings.topic_raw, value=encode(a), key=a.id.encode(), partition=partition
            )
            for a, partition in items
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _clusters(settings: Settings, ids: list[str]) -> dict[str, str]:
    backend = open_backend(settings)
    try:
        await backend.refresh(settings.index_alias)
        docs = await backend.mget(settings.index_alias, ids)
        return {d["_id"]: d["_source"]["cluster_id"] for d in docs if d.get("found")}
    finally:
        await backend.close()


async def test_two_workers_founding_one_story_at_once_converge(
    stack: Any,
    isolated: Any,
    tmp_path: Path,
    worker_process: Any,
    wait_for: Any,
    story_versions: Any,
) -> None:
    settings = isolated(stack.settings, "race", topic_partitions=2, batch_seconds=0.05)
    await run_setup(settings)
    workers: list[WorkerProcess] = [
        worker_process(settings, tmp_path / f"worker-{n}.log") for n in range(2)
    ]
    for worker in workers:
        worker.start()

    async def assigned() -> bool:
        for worker in workers:
            assert worker.alive(), worker.tail()
        return all(
            worker.log_file.exists() and ASSIGNED in worker.log_file.read_text(errors="replace")
            for worker in workers
        )

    await wait_for(assigned, 120, "both workers to take a partition")
    await asyncio.sleep(3)  # a second rebalance right after the first one, if any

    texts = {k: story_versions(18_000 + k, 4, 150) for k in range(STORIES)}

    def article(k: int, n: int) -> RawArticle:
        return RawArticle(
            id=f"s{k}-v{n}",
            title=f"Story {k}",
            body=texts[k][n],
            source=Source(name=f"Outlet {n}"),
        )

    # Phase 1: each story's first two versions, one per partition, in one send.
    first = [(article(k, n), n) for k in range(STORIES) for n in (0, 1)]
    await _send(settings, first)
    first_ids = [a.id for a, _ in first]

    async def indexed(ids: list[str]) -> bool:
        for worker in workers:
            assert worker.alive(), worker.tail()
        return len(await _clusters(settings, ids)) == len(ids)

    await wait_for(lambda: indexed(first_ids), 240, "the first versions to be indexed")
    before = await _clusters(settings, first_ids)
    raced = [k for k in range(STORIES) if before[f"s{k}-v0"] != before[f"s{k}-v1"]]
    adopted = sum(w.log_file.read_text(errors="replace").count("twin_adopted") for w in workers)
    print(f"stories founded twice by the race and settled after the write: {adopted}")
    assert raced == [], {k: (before[f"s{k}-v0"], before[f"s{k}-v1"]) for k in raced}
    await asyncio.sleep(2)  # the story table's refresh (1 s)

    # Phase 2: two later versions of each story, one per partition.
    later = [(article(k, n), n - 2) for k in range(STORIES) for n in (2, 3)]
    await _send(settings, later)
    later_ids = [a.id for a, _ in later]
    await wait_for(lambda: indexed(later_ids), 240, "the later versions to be indexed")
    after = await _clusters(settings, later_ids)
    for k in range(STORIES):
        assert after[f"s{k}-v2"] == after[f"s{k}-v3"] == before[f"s{k}-v0"], (k, before, after)
