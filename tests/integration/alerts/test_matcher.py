"""Standing queries matched in-stream equal `newswire search` with the same query over the
same articles (issue 19, item 4), on the real local Elasticsearch."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.alerts.matcher import Matcher
from pipeline.alerts.model import new_alert
from pipeline.search.query import SearchRequest
from pipeline.search.service import search
from pipeline.sinks.engines import open_backend
from pipeline.sinks.indexer import Indexer, install_index

pytestmark = pytest.mark.integration


@pytest.fixture
async def index(stack: Any, isolated: Any) -> Any:
    settings = isolated(stack.settings, "alerts", opensearch_url=None)
    backend = open_backend(settings)
    await install_index(backend, settings.index_alias)
    yield settings, backend
    await backend.close()


async def test_in_stream_matches_equal_search_results(index: Any, alerts_corpus: Any) -> None:
    settings, backend = index
    matcher = Matcher(backend, settings.index_alias)
    alerts = [new_alert(name, query, filters) for name, query, filters in alerts_corpus.queries]
    docs = alerts_corpus.articles
    indexer = Indexer(backend, settings.index_alias, refresh="true")
    # The first article has to exist before queries are analysed against the index.
    await matcher.put_many(alerts)
    matched: dict[str, set[str]] = {a.name: set() for a in alerts}
    candidates = 0
    for start in range(0, len(docs), 5):  # replayed in sink-sized batches
        batch = docs[start : start + 5]
        result = await indexer.write(batch)
        assert sorted(result.indexed) == sorted(a.id for a in batch)
        for match in await matcher.match([a.document() for a in batch]):
            matched[match.alert.name].add(str(match.document["id"]))
        candidates += matcher.last.candidates
    missed = extra = total = 0
    for alert in alerts:
        found = await search(
            settings,
            SearchRequest(query=alert.query, filters=alert.filters, size=len(docs) + 10),
        )
        expected = {str(hit["id"]) for hit in found.hits}
        missed += len(expected - matched[alert.name])
        extra += len(matched[alert.name] - expected)
        total += len(expected)
        assert matched[alert.name] == expected, alert.name
    print(f"queries={len(alerts)} matches={total} missed={missed} extra={extra}")
    assert (missed, extra) == (0, 0)
    assert total > len(alerts)  # the corpus exercises the queries, not only empty results
    # The index's analysis, not an approximation: stemming, folding, possessives.
    assert {"eq000", "eq001", "eq002", "eq016"} <= matched["stem-talk"]
    assert matched["stem-talk"] == matched["stem-talking"]
    assert matched["fold"] == matched["fold-accent"] == {"eq005"}
    assert "eq004" in matched["possessive"]
    assert matched["no-match"] == set()
    # The presearcher narrowed the work: fewer candidates than queries x batches.
    assert candidates < len(alerts) * ((len(docs) + 4) // 5)


async def test_removed_and_replaced_queries_apply_at_once(index: Any, alerts_corpus: Any) -> None:
    settings, backend = index
    matcher = Matcher(backend, settings.index_alias)
    docs = alerts_corpus.articles[:3]
    await Indexer(backend, settings.index_alias, refresh="true").write(docs)
    await matcher.put(new_alert("q", "vienna"))
    assert [m.document["id"] for m in await matcher.match([d.document() for d in docs])] == [
        "eq001"
    ]
    await matcher.put(new_alert("q", "negotiators"))
    found = await matcher.match([d.document() for d in docs])
    assert [m.document["id"] for m in found] == ["eq002"]
    assert found[0].terms == ("negoti",)
    matcher.remove("q")
    assert await matcher.match([d.document() for d in docs]) == []
