"""The search-index sink against the real search engine started by the session fixture."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline.models import EnrichedArticle, Entities, Topic
from pipeline.search.query import SearchRequest
from pipeline.search.service import search
from pipeline.sinks.engines import open_backend
from pipeline.sinks.indexer import Indexer, install_index
from pipeline.sinks.templates import load_templates

pytestmark = pytest.mark.integration

T0 = datetime(2015, 12, 15, 12, 0, tzinfo=UTC)


def _article(doc_id: str, title: str, *, fetched: datetime = T0, **extra: Any) -> EnrichedArticle:
    return EnrichedArticle(
        id=doc_id,
        title=title,
        body=extra.pop("body", f"{title}. Diplomats met in Moscow about the talks."),
        published_at=T0,
        fetched_at=fetched,
        language="en",
        entities=extra.pop("entities", Entities(person=["John Kerry"], location=["Moscow"])),
        topics=[Topic(code="medtop:11000000", label="politics", score=0.9)],
        **extra,
    )


@pytest.fixture(params=["elasticsearch", "opensearch"])
async def index(request: pytest.FixtureRequest, stack: Any, isolated: Any) -> Any:
    """Each test runs on the session's Elasticsearch, and again on an OpenSearch node (the
    optional backend keeps the same contract)."""
    if request.param == "opensearch":
        node = request.getfixturevalue("opensearch")
        settings = isolated(
            stack.settings,
            "index",
            search_engine="opensearch",
            elasticsearch_url=None,
            opensearch_url=node.url,
        )
    else:
        settings = isolated(stack.settings, "index", opensearch_url=None)
    backend = open_backend(settings)
    assert backend.engine == request.param
    setup = await install_index(backend, settings.index_alias)
    yield settings, backend, setup
    await backend.close()


async def test_setup_is_idempotent_and_creates_alias(index: Any) -> None:
    settings, backend, setup = index
    assert setup.created_index == f"{settings.index_alias}-000001"
    again = await install_index(backend, settings.index_alias)
    assert again.created_index is None  # alias exists: nothing new
    assert await backend.alias_exists(settings.index_alias)


async def test_external_versions_never_let_old_revisions_win(index: Any) -> None:
    settings, backend, _ = index
    indexer = Indexer(backend, settings.index_alias)
    new = _article("v1", "Newer headline", fetched=T0 + timedelta(hours=1))
    old = _article("v1", "Older headline", fetched=T0)
    first = await indexer.write([new])
    assert first.indexed == ["v1"]
    second = await indexer.write([old])  # a redelivered older revision
    assert second.stale == ["v1"] and not second.indexed and not second.rejected
    third = await indexer.write([new])  # the same revision again: overwritten, no duplicate
    assert third.indexed == ["v1"]
    await backend.refresh(settings.index_alias)
    source = await backend.get_source(settings.index_alias, "v1")
    assert source is not None and source["title"] == "Newer headline"
    assert await backend.count(settings.index_alias) == 1


async def test_strict_mapping_rejects_unknown_fields_and_immense_terms(index: Any) -> None:
    settings, backend, _ = index
    ops = [
        {"index": {"_index": settings.index_alias, "_id": "bad1"}},
        {"id": "bad1", "title": "x", "not_in_mapping": 1},
    ]
    response = await backend.bulk(ops)
    error = response["items"][0]["index"]["error"]
    assert error["type"] == "strict_dynamic_mapping_exception"
    indexer = Indexer(backend, settings.index_alias)
    result = await indexer.write(
        [_article("ok", "Fine"), _article("huge", "Big", authors=["x" * 40000])]
    )
    assert result.indexed == ["ok"]
    assert [a.id for a, _ in result.rejected] == ["huge"]
    assert "400" in result.rejected[0][1]


async def test_search_full_text_highlight_facets_filters(index: Any) -> None:
    settings, backend, _ = index
    indexer = Indexer(backend, settings.index_alias)
    await indexer.write(
        [
            _article("a", "Kerry meets Lavrov in Moscow"),
            _article(
                "b",
                "Football final in Madrid",
                body="Real Madrid won the final.",
                entities=Entities(organization=["Real Madrid"], location=["Madrid"]),
            ),
        ]
    )
    await backend.refresh(settings.index_alias)
    result = await search(
        settings,
        SearchRequest(query="Kerry Lavrov", facets=("person", "location", "topic", "time")),
    )
    assert result.total == 1
    hit = result.hits[0]
    assert hit["id"] == "a" and hit["published_at"].startswith("2015-12-15")
    assert any("**Kerry**" in fragment for fragment in hit["highlight"]["title"])
    assert result.facets["person"] == [{"value": "John Kerry", "count": 1}]
    assert result.facets["time"] == [{"value": "2015-12-15", "count": 1}]
    everything = await search(
        settings, SearchRequest(facets=("location",), filters=("location=Madrid",))
    )
    assert [h["id"] for h in everything.hits] == ["b"]
    assert everything.facets["location"] == [{"value": "Madrid", "count": 1}]


async def test_english_analysis_like_production(index: Any) -> None:
    """Both local nodes analyse text as production Elasticsearch does: stemmed, folded,
    possessives and stop words removed (Elasticsearch through the project's plugin)."""
    settings, backend, setup = index
    assert setup.variant == "english", f"{backend.engine} node lacks English analysis"
    await Indexer(backend, settings.index_alias).write(
        [_article("s", "Talks are running late in Zürich", body="The company's runners met.")]
    )
    await backend.refresh(settings.index_alias)
    for query in ("run", "zurich", "companies", "runner"):
        result = await search(settings, SearchRequest(query=query))
        assert [h["id"] for h in result.hits] == ["s"], query
    result = await search(settings, SearchRequest(query="the"))
    assert result.total == 0  # a stop word matches nothing


@pytest.mark.parametrize("policy", ["true", "false"])
async def test_refresh_true_makes_an_acknowledged_document_searchable_at_once(
    index: Any, policy: str
) -> None:
    """With the scheduled refresh off, only the bulk's own refresh can make it visible."""
    settings, backend, _ = index
    body = {"index": {"refresh_interval": "-1"}}
    if backend.engine == "elasticsearch":
        await backend.client.indices.put_settings(index=settings.index_alias, settings=body)
    else:
        await backend.client.indices.put_settings(index=settings.index_alias, body=body)
    indexer = Indexer(backend, settings.index_alias, refresh=policy)  # type: ignore[arg-type]
    result = await indexer.write([_article("fresh", "Fresh headline")])
    assert result.indexed == ["fresh"]
    assert await backend.count(settings.index_alias) == (1 if policy == "true" else 0)


async def test_recogniser_is_kept_and_fallback_documents_can_be_found(index: Any) -> None:
    """Each document names its recogniser (keyword fields); a record from a worker older
    than the field indexes with the default "unknown"."""
    settings, backend, _ = index
    older = _article("old", "Kerry in Moscow").model_dump(mode="json")
    del older["recogniser"], older["recogniser_model"]  # as an older worker wrote it
    await Indexer(backend, settings.index_alias).write(
        [
            _article("core", "Kerry meets Lavrov", recogniser="corenlp", recogniser_model="c 1"),
            _article("fall", "Lavrov in Geneva", recogniser="spacy", recogniser_model="s 2"),
            EnrichedArticle.model_validate(older),
        ]
    )
    await backend.refresh(settings.index_alias)
    source = await backend.get_source(settings.index_alias, "fall")
    assert source is not None
    assert (source["recogniser"], source["recogniser_model"]) == ("spacy", "s 2")
    old_source = await backend.get_source(settings.index_alias, "old")
    assert old_source is not None and old_source["recogniser"] == "unknown"
    fallback = await search(settings, SearchRequest(filters=("recogniser=spacy",)))
    assert [h["id"] for h in fallback.hits] == ["fall"]
    counts = await search(settings, SearchRequest(facets=("recogniser", "recogniser_model")))
    assert {f["value"]: f["count"] for f in counts.facets["recogniser"]} == {
        "corenlp": 1,
        "spacy": 1,
        "unknown": 1,
    }
    assert {f["value"] for f in counts.facets["recogniser_model"]} == {"c 1", "s 2", "unknown"}


async def test_setup_adds_new_fields_to_an_index_made_by_an_older_version(index: Any) -> None:
    """Rolling upgrades: an index whose mapping predates the recogniser fields refuses
    them (strict) until setup, which adds them to the indices behind the alias."""
    _, backend, setup = index
    alias = f"nwtest-older-{uuid.uuid4().hex[:8]}-articles"  # no template of this test matches
    templates = load_templates(setup.variant)
    mappings = copy.deepcopy(templates.mappings)
    for name in ("recogniser", "recogniser_model"):
        del mappings["properties"][name]
    index_settings: dict[str, Any] = {}
    for component in templates.components.values():
        index_settings.update(component["template"].get("settings", {}))
    await backend.create_index(
        f"{alias}-000001",
        {
            "settings": index_settings,
            "mappings": mappings,
            "aliases": {alias: {"is_write_index": True}},
        },
    )
    indexer = Indexer(backend, alias)
    article = _article("up", "Kerry in Geneva", recogniser="corenlp", recogniser_model="c 1")
    before = await indexer.write([article])
    assert [a.id for a, _ in before.rejected] == ["up"]  # the old mapping refuses the field
    again = await install_index(backend, alias)
    assert again.created_index is None
    after = await indexer.write([article])
    assert after.indexed == ["up"]
    source = await backend.get_source(alias, "up")
    assert source is not None and source["recogniser"] == "corenlp"
