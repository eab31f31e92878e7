"""`newswire trends` on the real local Elasticsearch: a burst planted in replayed dated
articles ranks first, above values that are always frequent; `--record` writes the same
rows (count, baseline, score) to the trends index."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.search.trends import TrendRequest, record_trends, trends
from pipeline.sinks.engines import open_backend
from pipeline.sinks.indexer import Indexer, install_index

pytestmark = pytest.mark.integration


async def test_planted_burst_ranks_first_and_is_recorded(
    stack: Any, isolated: Any, trends_corpus: Any
) -> None:
    settings = isolated(stack.settings, "trends", opensearch_url=None)
    until = trends_corpus.until
    backend = open_backend(settings)
    try:
        await install_index(backend, settings.index_alias)
        docs = trends_corpus.articles
        indexer = Indexer(backend, settings.index_alias, refresh="true")
        for start in range(0, len(docs), 500):
            await indexer.write(docs[start : start + 500])
        request = TrendRequest(facet="location", since="24h", until=until)
        ranked = await trends(settings, request)
        print([(t.value, t.count, round(t.score, 2)) for t in ranked[:4]])
        assert ranked[0].value == "Volcano Island" and ranked[0].count == 10
        steady = next(t for t in ranked if t.value == "Steadyville")
        assert steady.count == 48 and steady.score < 1  # the most frequent, but not rising
        assert steady.baseline_mean == 2.0 and steady.baseline_std == 0.0

        assert await record_trends(settings, [request]) == {"location": len(ranked)}
        assert await record_trends(settings, [request]) == {"location": len(ranked)}
        rows = await backend.search(
            settings.trend_index, {"size": 100, "sort": [{"score": "desc"}]}
        )
        hits = [h["_source"] for h in rows["hits"]["hits"]]
        assert rows["hits"]["total"]["value"] == len(ranked)  # recorded twice: replaced
        top = hits[0]
        assert (top["facet"], top["value"], top["count"], top["rank"]) == (
            "location", "Volcano Island", 10, 1,
        )  # fmt: skip
        assert abs(top["score"] - ranked[0].score) < 1e-4
        assert top["hour"].startswith(until.strftime("%Y-%m-%dT%H:00:00"))
        assert [round(h["score"], 3) for h in hits] == [round(t.score, 3) for t in ranked]
    finally:
        await backend.close()
