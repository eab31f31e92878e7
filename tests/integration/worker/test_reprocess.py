"""``reprocess`` on the real Elasticsearch and CoreNLP, during live ingest: every document
ends at the current enrichment version, counts equal, no duplicate, the newest revision
kept; killed half way, a second run resumes from its checkpoint."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.enrich.enricher import Enricher
from pipeline.enrich.recogniser import make_recogniser
from pipeline.models import EnrichedArticle
from pipeline.sinks.backend import SearchBackend
from pipeline.sinks.engines import open_backend
from pipeline.sinks.generations import rollover
from pipeline.sinks.indexer import Indexer, install_index
from pipeline.worker.reprocess import Reprocessor, ReprocessReport, Selection

pytestmark = pytest.mark.integration

OLD = 600
T0 = datetime(2025, 3, 1, tzinfo=UTC)
BODY = "John Kerry met Sergei Lavrov in Moscow on Tuesday to discuss the talks in Geneva."


def _old(n: int, revision: int = 0, version: str = "ev-old") -> EnrichedArticle:
    return EnrichedArticle(
        id=f"r{n:05d}",
        title=f"Talks {n} revision {revision}",
        body=BODY,
        fetched_at=T0 + timedelta(minutes=n, seconds=revision),
        enrichment_version=version,
        cluster_id=f"c{n}",
    )


@pytest.fixture
async def archive(stack: Any, isolated: Any, corenlp_url: str) -> Any:
    settings = isolated(stack.settings, "reprocess", opensearch_url=None, corenlp_url=corenlp_url)
    backend = open_backend(settings)
    await install_index(backend, settings.index_alias, settings)
    indexer = Indexer(backend, settings.index_alias, refresh="true")
    await indexer.write([_old(n) for n in range(OLD // 2)])
    await rollover(backend, settings.index_alias, {}, force=True)  # two generations
    await indexer.write([_old(n) for n in range(OLD // 2, OLD)])
    enricher = Enricher(recogniser=make_recogniser(settings))
    yield settings, backend, enricher
    for name in await backend.alias_indices(settings.index_alias):
        await backend.delete_index(name)
    await backend.close()


async def _count(backend: SearchBackend, alias: str, query: dict[str, Any]) -> int:
    await backend.refresh(alias)
    return await backend.count(alias, {"query": query})


async def test_reprocess_during_live_ingest_killed_and_resumed(
    archive: Any, tmp_path: Path
) -> None:
    settings, backend, enricher = archive
    alias = settings.index_alias
    current = enricher.version
    checkpoint = tmp_path / "reprocess.json"
    live = Indexer(backend, alias, refresh="true")
    revised: dict[int, int] = {}
    halfway = asyncio.Event()

    def on_progress(report: ReprocessReport) -> None:
        if report.done >= OLD // 2:
            halfway.set()

    async def ingest() -> None:
        """The worker meanwhile: new articles, and newer revisions of old ones."""
        for step in range(20):
            new = [_old(10_000 + step * 10 + i, version=current) for i in range(10)]
            n = (step * 53) % OLD
            revised[n] = revised.get(n, 0) + 1
            await live.write([*new, _old(n, revised[n], version=current)])
            await asyncio.sleep(0.05)

    first = Reprocessor(
        backend, alias, enricher, page_size=50, checkpoint=checkpoint, progress=on_progress
    )
    run = asyncio.create_task(first.run(Selection(stale=True)))
    feeding = asyncio.create_task(ingest())
    await asyncio.wait_for(halfway.wait(), 300)
    run.cancel()  # killed half way
    with pytest.raises(asyncio.CancelledError):
        await run
    assert checkpoint.is_file()

    second = Reprocessor(backend, alias, enricher, page_size=50, checkpoint=checkpoint)
    report = await second.run(Selection(stale=True))
    await feeding
    assert report.resumed_from >= OLD // 2  # it did not start over
    assert report.failed == [] and report.rejected == []

    total = OLD + 200
    assert await _count(backend, alias, {"match_all": {}}) == total  # 0 lost, 0 added
    stale = {"bool": {"must_not": [{"term": {"enrichment_version": current}}]}}
    assert await _count(backend, alias, stale) == 0
    dupes = await backend.search(
        alias, {"size": 0, "aggs": {"i": {"terms": {"field": "id", "min_doc_count": 2}}}}
    )
    assert dupes["aggregations"]["i"]["buckets"] == []
    # Re-enriched for real (the stored articles had no entities), clusters kept, and the
    # newest revision of every revised article kept.
    # (The live revisions of this test carry no entities: they were not re-enriched.)
    kerry = {"term": {"entities.person": "John Kerry"}}
    assert await _count(backend, alias, kerry) == OLD - len(revised)
    for n, revision in revised.items():
        source = await backend.search(alias, {"query": {"ids": {"values": [f"r{n:05d}"]}}})
        doc = source["hits"]["hits"][0]["_source"]
        assert doc["title"] == f"Talks {n} revision {revision}" and doc["cluster_id"] == f"c{n}"


@pytest.mark.parametrize("reenrich", [True, False])
async def test_relocate_moves_every_article_to_the_write_index(
    archive: Any, reenrich: bool
) -> None:
    """After a mapping change that could not apply in place (a new generation), the
    articles of the old generations move to the write index: counts equal, none twice."""
    settings, backend, enricher = archive
    alias = settings.index_alias
    rolled = await rollover(backend, alias, {}, force=True)
    report = await Reprocessor(backend, alias, enricher, page_size=100).run(
        Selection(relocate=True, reenrich=reenrich)
    )
    assert report.done == report.rewritten == OLD
    await backend.refresh(alias)
    counts = {g: await backend.count(g) for g in await backend.alias_indices(alias)}
    assert counts[rolled.new_index] == OLD and sum(counts.values()) == OLD
    stale = {"query": {"term": {"enrichment_version": "ev-old"}}}
    assert await backend.count(alias, stale) == (0 if reenrich else OLD)


async def test_reprocess_and_relocate_on_each_engine(
    engine_settings: Any, corenlp_url: str
) -> None:
    """The reprocess calls (point in time, ``search_after``, writes to the generation that
    holds each id, relocation with deletes) on Elasticsearch and on OpenSearch."""
    settings = engine_settings("reproc-engine", corenlp_url=corenlp_url)
    alias = settings.index_alias
    backend = open_backend(settings)
    try:
        await install_index(backend, alias, settings)
        indexer = Indexer(backend, alias, refresh="true")
        await indexer.write([_old(n) for n in range(100)])
        await rollover(backend, alias, {}, force=True)
        await indexer.write([_old(n) for n in range(100, 200)])
        enricher = Enricher(recogniser=make_recogniser(settings))
        report = await Reprocessor(backend, alias, enricher, page_size=40).run(
            Selection(stale=True)
        )
        assert report.done == report.rewritten == 200 and report.failed == []
        stale = {"bool": {"must_not": [{"term": {"enrichment_version": enricher.version}}]}}
        assert await _count(backend, alias, stale) == 0
        assert await _count(backend, alias, {"term": {"entities.person": "John Kerry"}}) == 200
        rolled = await rollover(backend, alias, {}, force=True)
        moved = await Reprocessor(backend, alias, enricher, page_size=40).run(
            Selection(relocate=True, reenrich=False)
        )
        assert moved.done == 200
        await backend.refresh(alias)
        counts = {g: await backend.count(g) for g in await backend.alias_indices(alias)}
        assert counts[rolled.new_index] == 200 and sum(counts.values()) == 200
    finally:
        for name in await backend.alias_indices(alias):
            await backend.delete_index(name)
        await backend.close()
