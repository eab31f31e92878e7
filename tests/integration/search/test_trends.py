"""`newswire trends` on the real local Elasticsearch: a burst planted in replayed dated
articles ranks first, above values that are always frequent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline.models import EnrichedArticle, Entities
from pipeline.search.trends import TrendRequest, trends
from pipeline.sinks.engines import open_backend
from pipeline.sinks.indexer import Indexer, install_index

pytestmark = pytest.mark.integration
UNTIL = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _article(n: int, at: datetime, place: str) -> EnrichedArticle:
    return EnrichedArticle(
        id=f"tr{n:05d}", title=f"News from {place}", published_at=at, fetched_at=at,
        language="en", entities=Entities(location=[place]),
    )  # fmt: skip


def dated_articles() -> list[EnrichedArticle]:
    docs: list[EnrichedArticle] = []
    for hour in range(8 * 24):  # seven baseline days and the last day
        at = UNTIL - timedelta(hours=hour, minutes=30)
        docs += [_article(len(docs), at, "Steadyville"), _article(len(docs) + 1, at, "Steadyville")]
        if hour % 4 == 0:
            docs += [_article(len(docs) + i, at, f"Town {i}") for i in range(8)]
    docs.append(_article(len(docs), UNTIL - timedelta(days=5), "Volcano Island"))
    for k in range(10):  # the burst: ten articles in the last day
        docs.append(_article(len(docs), UNTIL - timedelta(hours=2 * k + 1), "Volcano Island"))
    return docs


async def test_planted_burst_ranks_first(stack: Any, isolated: Any) -> None:
    settings = isolated(stack.settings, "trends", opensearch_url=None)
    backend = open_backend(settings)
    try:
        await install_index(backend, settings.index_alias)
        docs = dated_articles()
        indexer = Indexer(backend, settings.index_alias, refresh="true")
        for start in range(0, len(docs), 500):
            await indexer.write(docs[start : start + 500])
    finally:
        await backend.close()
    ranked = await trends(settings, TrendRequest(facet="location", since="24h", until=UNTIL))
    print([(t.value, t.count, round(t.score, 2)) for t in ranked[:4]])
    assert ranked[0].value == "Volcano Island" and ranked[0].count == 10
    steady = next(t for t in ranked if t.value == "Steadyville")
    assert steady.count == 48 and steady.score < 1  # the most frequent, but not rising
