"""Index generations on the real Elasticsearch: rollover during live writes, revisions of
articles in old generations land in place, retirement of whole generations."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline.models import EnrichedArticle
from pipeline.sinks.backend import SearchBackend
from pipeline.sinks.engines import open_backend
from pipeline.sinks.generations import list_generations, retire, rollover
from pipeline.sinks.indexer import Indexer, install_index

pytestmark = pytest.mark.integration

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _article(n: int, revision: int = 0) -> EnrichedArticle:
    return EnrichedArticle(
        id=f"a{n:05d}",
        title=f"article {n} revision {revision}",
        body="Diplomats met in Moscow about the talks.",
        fetched_at=T0 + timedelta(minutes=n, seconds=revision),
        language="en",
    )


@pytest.fixture
async def generations(engine_settings: Any) -> Any:
    settings = engine_settings("gen")
    backend = open_backend(settings)
    await install_index(backend, settings.index_alias, settings)
    yield settings, backend
    for name in await backend.alias_indices(settings.index_alias):
        await backend.delete_index(name)
    await backend.close()


async def _duplicate_ids(backend: SearchBackend, alias: str) -> list[str]:
    answer = await backend.search(
        alias,
        {"size": 0, "aggs": {"ids": {"terms": {"field": "id", "min_doc_count": 2, "size": 100}}}},
    )
    return [b["key"] for b in answer["aggregations"]["ids"]["buckets"]]


async def _where(backend: SearchBackend, alias: str, ids: list[str]) -> dict[str, tuple[str, str]]:
    answer = await backend.search(
        alias, {"query": {"ids": {"values": ids}}, "size": 2 * len(ids), "_source": ["title"]}
    )
    return {h["_id"]: (h["_index"], h["_source"]["title"]) for h in answer["hits"]["hits"]}


async def test_rollover_during_live_writes_keeps_every_article_once(generations: Any) -> None:
    settings, backend = generations
    alias = settings.index_alias
    # The sink rolls over by itself at 150 documents; a cron-like task forces it too.
    # refresh="true" as the worker's default (NEWSWIRE_INDEX_REFRESH): max_docs counts
    # refreshed documents.
    indexer = Indexer(
        backend, alias, refresh="true", rollover_conditions={"max_docs": 150}, rollover_every=0.01
    )
    total, batch = 900, 30
    latest: dict[int, int] = {}
    first_home: dict[int, str] = {}
    stop = asyncio.Event()

    async def ingest() -> None:
        for start in range(0, total, batch):
            news = [_article(n) for n in range(start, start + batch)]
            # Revisions of articles written earlier (most of them in older generations).
            revised = list(range(0, start, 37))[-10:]
            for n in revised:
                latest[n] = latest.get(n, 0) + 1
            for n in range(start, start + batch):
                latest.setdefault(n, 0)
            await indexer.write(news + [_article(n, latest[n]) for n in revised])
        stop.set()

    async def cron() -> None:
        while not stop.is_set():
            await asyncio.sleep(0.3)
            await rollover(backend, alias, {"max_docs": 200})

    await asyncio.gather(ingest(), cron())
    await backend.refresh(alias)
    gens = await list_generations(backend, alias)
    assert len(gens) >= 3, gens
    assert sum(g.write for g in gens) == 1 and gens[-1].write
    assert await backend.count(alias) == total
    assert await _duplicate_ids(backend, alias) == []
    # Every revision is the newest one, and the revised articles of the first generation
    # are still there (written in place, not beside it in the write index).
    ids = [f"a{n:05d}" for n in sorted(latest) if latest[n]]
    where = await _where(backend, alias, ids)
    for n in (n for n in sorted(latest) if latest[n]):
        index, title = where[f"a{n:05d}"]
        assert title == f"article {n} revision {latest[n]}"
        first_home.setdefault(n, index)
    assert any(index == gens[0].name for index, _ in where.values())
    # An older revision of an article in an old generation is refused, not added.
    old = min(n for n in latest if latest[n])
    stale = await indexer.write([_article(old, 0)])
    assert stale.stale == [f"a{old:05d}"] and not stale.indexed
    assert await backend.count(alias) == total


async def test_retire_deletes_whole_old_generations_only(generations: Any) -> None:
    settings, backend = generations
    alias = settings.index_alias
    indexer = Indexer(backend, alias, refresh="true")
    await indexer.write([_article(n) for n in range(10)])  # fetched in 2025
    await rollover(backend, alias, {}, force=True)
    recent = EnrichedArticle(id="fresh", title="fresh", fetched_at=datetime.now(UTC))
    await indexer.write([recent])
    await rollover(backend, alias, {}, force=True)  # the write index is empty: never retired
    assert await retire(backend, alias, None) == []  # off by default
    doomed = await retire(backend, alias, 30)
    gens = await list_generations(backend, alias)
    assert [g.docs for g in doomed] == [10]
    assert len(gens) == 2 and doomed[0].name not in {g.name for g in gens}
    await backend.refresh(alias)
    assert await backend.count(alias) == 1


async def test_a_revision_in_the_rollover_window_leaves_no_second_copy(generations: Any) -> None:
    """The lookup before a bulk is a search and cannot see documents written to the old
    write index since its last refresh; a revision of one of them right after a rollover
    went to the new write index beside it. The indexer now finds such twins with a realtime
    ``mget`` and deletes the older copy: through the indexer that wrote before the rollover,
    and through a new one (a restarted worker: its first bulk)."""
    settings, backend = generations
    alias = settings.index_alias
    first = await backend.write_index(alias)
    # Never refreshed on its own: what is written there stays invisible to the lookup, as
    # it is for up to a refresh interval on a live cluster.
    await backend.put_index_settings(first, {"index": {"refresh_interval": "-1"}})
    writer = Indexer(backend, alias)
    await writer.write([_article(1), _article(2), _article(3, revision=2)])
    assert (await backend.search(first, {"query": {"match_all": {}}}))["hits"]["hits"] == []
    await backend.rollover(alias, {})  # another process rolls over, no refresh in between
    await writer.write([_article(1, revision=1)])
    restarted = Indexer(backend, alias)
    await restarted.write([_article(2, revision=1)])
    # An older revision arriving in the window: the newer copy in the old generation stays.
    await restarted.write([_article(3, revision=1)])
    await backend.refresh(alias)
    assert await _duplicate_ids(backend, alias) == []
    assert await backend.count(alias) == 3
    where = await _where(backend, alias, ["a00001", "a00002", "a00003"])
    assert where["a00001"][1] == "article 1 revision 1"
    assert where["a00002"][1] == "article 2 revision 1"
    assert where["a00003"] == (first, "article 3 revision 2")
