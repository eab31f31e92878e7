"""Stories at search time: one story's document (``newswire story ID``), and search
results collapsed by story (``newswire search --stories``)."""

from __future__ import annotations

from typing import Any

from pipeline.search.query import SearchRequest, build_body, shape_response
from pipeline.settings import Settings
from pipeline.sinks.engines import open_backend

#: Fields of a story document shown with a collapsed search hit.
STORY_FIELDS = (
    "title", "first_seen", "first_source", "last_seen", "article_count", "copy_count",
    "source_count", "sources", "top_person", "top_organization", "top_location", "top_topics",
)  # fmt: skip


def collapsed_body(request: SearchRequest) -> dict[str, Any]:
    """The search body with hits collapsed by ``cluster_id`` (the best hit per story), the
    number of matching articles per story, and the number of stories in total."""
    body = build_body(request)
    body["collapse"] = {"field": "cluster_id", "inner_hits": {"name": "story", "size": 0}}
    body.setdefault("aggs", {})["stories"] = {"cardinality": {"field": "cluster_id"}}
    return body


def shape_collapsed(
    response: dict[str, Any], request: SearchRequest, stories: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The ``search --stories --json`` shape: the search contract plus ``stories`` (the
    number of stories) and, on each hit, ``story`` (matching articles, and the story
    document's fields)."""
    result = shape_response(response, request).as_json()
    result["stories"] = int(
        response.get("aggregations", {}).get("stories", {}).get("value", len(result["hits"]))
    )
    raw_hits = response.get("hits", {}).get("hits", [])
    for hit, raw in zip(result["hits"], raw_hits, strict=True):
        cluster = (raw.get("fields", {}).get("cluster_id") or [None])[0] or raw.get(
            "_source", {}
        ).get("cluster_id")
        inner = raw.get("inner_hits", {}).get("story", {}).get("hits", {}).get("total", {})
        matching = int(inner.get("value", 1)) if isinstance(inner, dict) else int(inner)
        doc = stories.get(str(cluster), {})
        hit["story"] = {
            "cluster_id": cluster,
            "matching_articles": matching,
            **{name: doc.get(name) for name in STORY_FIELDS},
        }
    return result


async def search_stories(settings: Settings, request: SearchRequest) -> dict[str, Any]:
    """``newswire search --stories``."""
    backend = open_backend(settings)
    try:
        response = await backend.search(settings.index_alias, collapsed_body(request))
        clusters = [
            c
            for c in (
                (h.get("fields", {}).get("cluster_id") or [None])[0]
                for h in response.get("hits", {}).get("hits", [])
            )
            if c
        ]
        stories: dict[str, dict[str, Any]] = {}
        if clusters:
            for doc in await backend.mget(settings.story_index, clusters):
                if doc.get("found"):
                    stories[str(doc["_id"])] = doc["_source"]
    finally:
        await backend.close()
    return shape_collapsed(response, request, stories)


async def get_story(settings: Settings, cluster_id: str) -> dict[str, Any] | None:
    """``newswire story ID``: the story document (without its bookkeeping fields)."""
    backend = open_backend(settings)
    try:
        doc = await backend.get_source(settings.story_index, cluster_id)
    finally:
        await backend.close()
    if doc is None:
        return None
    doc.pop("counts", None)
    doc.pop("article_ids", None)
    return doc


__all__ = ["collapsed_body", "get_story", "search_stories", "shape_collapsed"]
