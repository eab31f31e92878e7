"""The stories index kept by the sink's writer, `story ID` and `search --stories`, on the
real local Elasticsearch."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pipeline.search.query import SearchRequest
from pipeline.search.stories import get_story, search_stories
from pipeline.sinks.engines import open_backend
from pipeline.sinks.indexer import Indexer, install_index
from pipeline.sinks.stories import StoryWriter, install_stories_index
from pipeline.sinks.story_docs import StoryItem, item_of

pytestmark = pytest.mark.integration


async def test_stories_index_story_and_collapsed_search(
    stack: Any, isolated: Any, alerts_corpus: Any
) -> None:
    settings = isolated(stack.settings, "stories", opensearch_url=None)
    backend = open_backend(settings)
    try:
        await install_index(backend, settings.index_alias)
        assert await install_stories_index(backend, settings.story_index)
        assert not await install_stories_index(backend, settings.story_index)
        docs = alerts_corpus.articles
        # Three Kerry articles are one story; the rest are stories of their own.
        kerry = {"eq000", "eq016", "eq018", "eq023"}
        docs = [d.model_copy(update={"cluster_id": "eq000"}) if d.id in kerry else d for d in docs]
        await Indexer(backend, settings.index_alias, refresh="true").write(docs)
        writer = StoryWriter(backend, settings.story_index)
        items = [i for i in (item_of(d) for d in docs) if i is not None]
        # Two writers race on the same stories: optimistic concurrency loses nothing.
        await asyncio.gather(writer.update(items[:12]), writer.update(items[12:]))
        copy = StoryItem(
            id="copy1", cluster_id="eq000", title=docs[0].title, url="https://wire.example/k",
            source="Wire", domain="wire.example", seen_at=docs[0].fetched_at, copy_of="eq000",
        )  # fmt: skip
        await writer.update([copy])
        assert await writer.update([copy]) == 0  # redelivered: nothing new to write
        await backend.refresh(settings.story_index)
        story = await get_story(settings, "eq000")
        assert story is not None
        assert story["article_count"] == 4 and story["copy_count"] == 1
        assert "Wire" in story["sources"] and "BBC" in story["sources"]
        assert story["top_person"][0] == "John Kerry"
        assert story["first_article"] == "eq000"
        assert await get_story(settings, "nope") is None

        result = await search_stories(settings, SearchRequest(query="kerry", size=10))
        assert result["total"] == 4 and result["stories"] == 1
        (hit,) = result["hits"]
        assert hit["story"]["cluster_id"] == "eq000"
        assert hit["story"]["matching_articles"] == 4 and hit["story"]["article_count"] == 4
        climate = await search_stories(settings, SearchRequest(query="climate", size=10))
        assert climate["total"] == 3 and climate["stories"] == 2
        counts = {
            h["story"]["cluster_id"]: h["story"]["matching_articles"] for h in climate["hits"]
        }
        assert counts == {"eq000": 2, "eq017": 1}
    finally:
        await backend.close()
