"""``export`` on the real Elasticsearch: more than 10,000 articles, equal to ``_count``,
in memory that does not grow with the number of articles."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline.models import EnrichedArticle, Entities
from pipeline.search.export import export
from pipeline.search.scan import article_query
from pipeline.sinks.engines import open_backend
from pipeline.sinks.indexer import Indexer, install_index

pytestmark = pytest.mark.integration

TOTAL = 12_000
T0 = datetime(2025, 1, 1, tzinfo=UTC)


class Counting(io.TextIOBase):
    """A stdout that keeps only the line count and the last line (memory stays the test's)."""

    def __init__(self) -> None:
        self.lines = 0
        self.last = ""

    def write(self, text: str) -> int:
        self.lines += text.count("\n")
        self.last = text
        return len(text)


@pytest.fixture(scope="module")
async def big_index(stack: Any, isolated: Any) -> Any:
    settings = isolated(stack.settings, "export", opensearch_url=None)
    backend = open_backend(settings)
    await install_index(backend, settings.index_alias, settings)
    indexer = Indexer(backend, settings.index_alias)
    for start in range(0, TOTAL, 2000):
        await indexer.write(
            [
                EnrichedArticle(
                    id=f"e{n:06d}",
                    title=f"Article {n}",
                    body="Diplomats met in Moscow about the talks. " * 5,
                    fetched_at=T0 + timedelta(seconds=n),
                    published_at=T0 + timedelta(seconds=n),
                    entities=Entities(person=["John Kerry"] if n % 3 == 0 else []),
                    language="en",
                )
                for n in range(start, start + 2000)
            ]
        )
    await backend.refresh(settings.index_alias)
    yield settings, backend
    for name in await backend.alias_indices(settings.index_alias):
        await backend.delete_index(name)
    await backend.close()


async def test_export_of_more_than_10000_articles_equals_count(big_index: Any) -> None:
    settings, backend = big_index
    alias = settings.index_alias
    progress: list[tuple[int, int]] = []
    out = io.StringIO()
    report = await export(
        backend, alias, article_query(), out, progress=lambda d, t: progress.append((d, t))
    )
    assert report.expected == await backend.count(alias) == TOTAL
    lines = out.getvalue().splitlines()
    assert report.written == len(lines) == TOTAL
    ids = [json.loads(line)["id"] for line in lines]
    assert len(set(ids)) == TOTAL and ids == sorted(ids)
    assert progress[-1] == (TOTAL, TOTAL) and len(progress) >= TOTAL // 1000


async def test_csv_with_fields_and_a_query(big_index: Any) -> None:
    settings, backend = big_index
    out = io.StringIO()
    query = article_query(filters=["person=John Kerry"])
    report = await export(
        backend, settings.index_alias, query, out, fmt="csv", fields=["id", "entities.person"]
    )
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[0] == ["id", "entities.person"]
    assert report.written == report.expected == len(rows) - 1 == TOTAL // 3
    assert all(row[1] == "John Kerry" for row in rows[1:])


async def test_export_memory_does_not_grow_with_the_number_of_articles(big_index: Any) -> None:
    settings, backend = big_index
    peaks = {}
    for label, query in (
        ("small", article_query(since="2025-01-01T00:00:00Z", until="2025-01-01T00:33:19Z")),
        ("all", article_query()),
    ):
        out = Counting()
        tracemalloc.start()
        report = await export(backend, settings.index_alias, query, out)
        peaks[label] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert out.lines == report.written == report.expected
    # 2,000 articles against 12,000: a peak of pages, not of the whole result.
    assert peaks["all"] < 1.5 * peaks["small"], peaks


async def test_export_pages_through_a_point_in_time_on_each_engine(engine_settings: Any) -> None:
    """The point in time and ``search_after`` calls on both engines (OpenSearch names its
    PIT API differently): pages of 100 across two generations, every article once."""
    from pipeline.sinks.generations import rollover

    settings = engine_settings("export-pit")
    backend = open_backend(settings)
    alias = settings.index_alias
    try:
        await install_index(backend, alias, settings)
        indexer = Indexer(backend, alias, refresh="true")
        articles = [
            EnrichedArticle(id=f"p{n:04d}", title=f"A {n}", fetched_at=T0 + timedelta(seconds=n))
            for n in range(750)
        ]
        await indexer.write(articles[:400])
        await rollover(backend, alias, {}, force=True)
        await indexer.write(articles[400:])
        out = io.StringIO()
        report = await export(backend, alias, article_query(), out, page_size=100)
        ids = [json.loads(line)["id"] for line in out.getvalue().splitlines()]
        assert report.written == report.expected == len(ids) == 750
        assert ids == [a.id for a in articles]
    finally:
        for name in await backend.alias_indices(alias):
            await backend.delete_index(name)
        await backend.close()
