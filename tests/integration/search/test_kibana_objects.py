"""Kibana cannot run here, so its saved objects are proven against the real index instead:
every field they use has the capability they need in ``_field_caps``, and each Lens panel's
aggregation, issued as the equivalent Elasticsearch query, returns buckets once the seed and
a few articles are enriched and indexed. The rising panels read the rows `newswire trends
--record` wrote, and rank values as `newswire trends` does, with the same scores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.models import EnrichedArticle
from pipeline.search.trends import TrendRequest, record_trends, trends
from pipeline.settings import Settings
from pipeline.sinks.engines import open_backend
from pipeline.sinks.indexer import Indexer, install_index
from pipeline.sinks.stories import StoryWriter, install_stories_index
from pipeline.sinks.story_docs import item_of
from pipeline.sources.replay import ReplayReport, collect

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
NDJSON = ROOT / "deploy" / "kibana" / "newswire.ndjson"
RECORDS = "___records___"
#: A window reaching the seed and the extra articles (2024), for the trends rows.
TREND_WINDOW = "1500d"
# A few more articles beside the seed, from other sources and days.
EXTRA = [
    {
        "url": "https://sport.example.org/2024/05/25/final",
        "title": "Manchester United beat Manchester City in the FA Cup final",
        "body": "Manchester United won the FA Cup final at Wembley Stadium in London on "
        "Saturday. Erik ten Hag's side beat Manchester City 2-1 with goals from Alejandro "
        "Garnacho and Kobbie Mainoo. The Football Association presented the trophy.",
        "published_at": "2024-05-25T18:00:00Z",
        "source": {"name": "Sport Example", "domain": "sport.example.org"},
    },
    {
        "url": "https://business.example.com/2024/06/03/chips",
        "title": "Microsoft and Nvidia shares rise as investors bet on chips",
        "body": "Shares of Microsoft and Nvidia rose on Monday in New York as investors "
        "bought technology stocks. Analysts at Goldman Sachs said company earnings and "
        "demand for data centres would lift profits and the wider market this year.",
        "published_at": "2024-06-03T09:30:00Z",
        "source": {"name": "Business Example", "domain": "business.example.com"},
    },
]


def _objects() -> list[dict[str, Any]]:
    return [json.loads(line) for line in NDJSON.read_text(encoding="utf-8").splitlines()]


def _view(obj: dict[str, Any]) -> str:
    """The data view an object reads (a data view reads itself)."""
    if obj["type"] == "index-pattern":
        return str(obj["id"])
    views = [ref["id"] for ref in obj["references"] if ref["type"] == "index-pattern"]
    return str(views[0]) if views else ""


def _layers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return list(obj["attributes"]["state"]["datasourceStates"]["formBased"]["layers"].values())


def _needs(objects: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Field -> the capabilities the saved objects need of it."""
    needs: dict[str, set[str]] = {}

    def need(field: str, capability: str) -> None:
        needs.setdefault(field, set()).add(capability)

    for obj in objects:
        attributes = obj["attributes"]
        if obj["type"] == "index-pattern":
            need(attributes["timeFieldName"], "aggregatable")  # the time picker's range
        elif obj["type"] == "search":
            for column in attributes["columns"]:
                need(column, "searchable")
            for field, _order in attributes["sort"]:
                need(field, "aggregatable")  # sorting needs doc values, like aggregating
        elif obj["type"] == "lens":
            for layer in _layers(obj):
                for column in layer["columns"].values():
                    field = column.get("sourceField")
                    if field and field != RECORDS:
                        aggregated = column["isBucketed"] or column["operationType"] != "count"
                        need(field, "aggregatable" if aggregated else "searchable")
    return needs


def _kuery(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The panel's query (only the ``field : "value"`` form is used) as a term filter."""
    text = obj["attributes"]["state"]["query"]["query"].strip()
    if not text:
        return []
    field, _, value = text.partition(":")
    assert value.strip().startswith('"'), f'{obj["id"]}: kuery {text!r} is not field : "value"'
    return [{"term": {field.strip(): json.loads(value.strip())}}]


def _metric(column: dict[str, Any]) -> dict[str, Any] | None:
    if column["operationType"] == "max":
        return {"max": {"field": column["sourceField"]}}
    assert column["operationType"] == "count", column
    return None


def _panel_query(layer: dict[str, Any], filters: list[dict[str, Any]]) -> dict[str, Any]:
    """The Elasticsearch request a Lens layer stands for: its bucket columns nested in
    column order (terms, ordered by a metric column when it says so; date_histogram),
    its metric columns inside the innermost bucket, under the panel's query."""
    aggs: dict[str, Any] = {}
    current = aggs
    metrics = {
        column_id: agg
        for column_id, column in layer["columns"].items()
        if not column["isBucketed"] and (agg := _metric(column)) is not None
    }
    for column_id in layer["columnOrder"]:
        column = layer["columns"][column_id]
        if not column["isBucketed"]:
            continue
        if column["operationType"] == "terms":
            terms: dict[str, Any] = {
                "field": column["sourceField"], "size": column["params"]["size"],
            }  # fmt: skip
            order = column["params"].get("orderBy", {})
            if order.get("type") == "column":
                by = order["columnId"] if order["columnId"] in metrics else "_count"
                terms["order"] = {by: column["params"]["orderDirection"]}
            body = {"terms": terms}
        elif column["operationType"] == "date_histogram":
            # "auto" picks an interval from the time range; a day is one of its choices.
            body = {"date_histogram": {"field": column["sourceField"], "calendar_interval": "1d"}}
        else:
            raise AssertionError(f"no query equivalent for {column['operationType']}")
        current[column_id] = {**body, "aggs": dict(metrics)}  # metrics at every level
        current = current[column_id]["aggs"]
    query = {"bool": {"filter": filters}}
    return {"size": 0, "track_total_hits": True, "query": query, "aggs": aggs}


def _first_buckets(response: dict[str, Any], layer: dict[str, Any]) -> list[Any]:
    bucketed = [c for c in layer["columnOrder"] if layer["columns"][c]["isBucketed"]]
    if not bucketed:
        return [response["hits"]["total"]["value"]] if response["hits"]["total"]["value"] else []
    return list(response["aggregations"][bucketed[0]]["buckets"])


@pytest.fixture(scope="module")
async def kibana_index(stack: Any, tmp_path_factory: pytest.TempPathFactory, isolated: Any) -> Any:
    """The seed and a few articles, really enriched and indexed in an alias of their own."""
    from pipeline.enrich.enricher import Enricher
    from pipeline.enrich.recogniser import make_recogniser

    settings: Settings = isolated(stack.settings, "kibana", opensearch_url=None)
    extra = tmp_path_factory.mktemp("kibana") / "extra.jsonl"
    extra.write_text("\n".join(json.dumps(a) for a in EXTRA) + "\n", encoding="utf-8")
    report = ReplayReport()
    raw = collect([ROOT / "seeds", extra], settings, report)
    assert not report.errors and len(raw) >= 3
    enriched = [
        EnrichedArticle(**article.model_dump(), **enrichment.model_dump())
        for article, enrichment in zip(
            raw, Enricher(recogniser=make_recogniser(settings)).enrich(raw), strict=True
        )
    ]
    settings = settings.model_copy(update={"story_index": f"{settings.index_alias}-stories"})
    backend = open_backend(settings)
    await install_index(backend, settings.index_alias)
    result = await Indexer(backend, settings.index_alias).write(enriched)
    assert len(result.indexed) == len(enriched), result
    await backend.refresh(settings.index_alias)
    await install_stories_index(backend, settings.story_index)
    # Clusters are the worker's (not the enricher's): each article founds its own story.
    clustered = [a.model_copy(update={"cluster_id": a.cluster_id or a.id}) for a in enriched]
    items = [i for i in (item_of(a) for a in clustered) if i is not None]
    assert await StoryWriter(backend, settings.story_index).update(items)
    await backend.refresh(settings.story_index)
    requests = [
        TrendRequest(facet=facet, since=TREND_WINDOW, min_count=1, size=15)
        for facet in ("person", "organization", "location", "topic")
    ]
    written = await record_trends(settings, requests)
    assert written["person"] and written["topic"], written
    yield settings, backend
    await backend.close()


async def test_every_field_has_the_capability_the_objects_need(kibana_index: Any) -> None:
    settings, backend = kibana_index
    indices = {
        "newswire-articles": settings.index_alias,
        "newswire-stories": settings.story_index,
        "newswire-trends": settings.trend_index,
    }
    for view, index in indices.items():
        needs = _needs([obj for obj in _objects() if _view(obj) == view])
        assert needs, f"the saved objects use no fields of {view}"
        caps = await backend.client.field_caps(index=index, fields=sorted(needs))
        for field, wanted in sorted(needs.items()):
            assert field in caps["fields"], f"{field} is not in the real index {view}"
            for _type, spec in caps["fields"][field].items():
                for capability in wanted:
                    assert spec[capability], f"{field} is not {capability} in {view}"


def _index(settings: Settings, obj: dict[str, Any]) -> str:
    return {
        "newswire-stories": settings.story_index,
        "newswire-trends": settings.trend_index,
    }.get(_view(obj), settings.index_alias)


async def test_each_lens_panel_returns_buckets(kibana_index: Any) -> None:
    settings, backend = kibana_index
    panels = 0
    for obj in _objects():
        if obj["type"] != "lens":
            continue
        for layer in _layers(obj):
            body = _panel_query(layer, _kuery(obj))
            response = await backend.search(_index(settings, obj), body)
            buckets = _first_buckets(response, layer)
            assert buckets, f"{obj['id']}: no buckets for {body['aggs']}"
            panels += 1
    assert panels >= 8


async def test_rising_panels_show_the_score_of_newswire_trends(kibana_index: Any) -> None:
    settings, backend = kibana_index
    by_facet = {"newswire-lens-rising-people": "person", "newswire-lens-rising-topics": "topic"}
    for obj in _objects():
        if obj["id"] not in by_facet:
            continue
        (layer,) = _layers(obj)
        response = await backend.search(_index(settings, obj), _panel_query(layer, _kuery(obj)))
        shown = [(b["key"], b["score"]["value"]) for b in _first_buckets(response, layer)]
        request = TrendRequest(facet=by_facet[obj["id"]], since=TREND_WINDOW, min_count=1, size=15)
        ranked = await trends(settings, request)
        print(obj["id"], shown[:5], [(t.value, round(t.score, 2)) for t in ranked[:5]])
        assert {v for v, _ in shown} == {t.value for t in ranked}
        expected = {t.value: t.score for t in ranked}
        for value, score in shown:  # the index keeps floats: the same score to 1e-4
            assert abs(score - expected[value]) < 1e-4 * max(1.0, abs(score)), value
        assert [s for _, s in shown] == sorted((s for _, s in shown), reverse=True)


async def test_rising_places_panel_ranks_a_planted_burst_first(
    stack: Any, isolated: Any, trends_corpus: Any
) -> None:
    settings = isolated(stack.settings, "kibanatrends", opensearch_url=None)
    backend = open_backend(settings)
    try:
        await install_index(backend, settings.index_alias)
        indexer = Indexer(backend, settings.index_alias, refresh="true")
        docs = trends_corpus.articles
        for start in range(0, len(docs), 500):
            await indexer.write(docs[start : start + 500])
        request = TrendRequest(facet="location", since="24h", until=trends_corpus.until)
        await record_trends(settings, [request])
        (obj,) = [o for o in _objects() if o["id"] == "newswire-lens-rising-places"]
        (layer,) = _layers(obj)
        response = await backend.search(_index(settings, obj), _panel_query(layer, _kuery(obj)))
        shown = [(b["key"], b["score"]["value"]) for b in _first_buckets(response, layer)]
        ranked = await trends(settings, request)
        print(shown[:3], [(t.value, round(t.score, 2)) for t in ranked[:3]])
        assert shown[0][0] == ranked[0].value == "Volcano Island"
        assert abs(shown[0][1] - ranked[0].score) < 1e-4
        assert shown[-1][1] < 1  # Steadyville, the most frequent, is last
    finally:
        await backend.close()
