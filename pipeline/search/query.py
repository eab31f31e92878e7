"""Pure search logic: request bodies from a query, facets and filters; results as the
``newswire search --json`` contract (docs/architecture.md)."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import ConfigError
from pipeline.search.syntax import parse_query

#: User-facing facet names -> index fields (every facet field is a ``keyword``).
FACETS: dict[str, str] = {
    "person": "entities.person",
    "organization": "entities.organization",
    "location": "entities.location",
    "misc": "entities.misc",
    "topic": "topics.label",
    "topic_code": "topics.code",
    "source": "source.name",
    "domain": "source.domain",
    "language": "language",
    "tag": "tags",
    "keyword": "keywords",
    "author": "authors",
    "cluster": "cluster_id",
    "recogniser": "recogniser",
    "recogniser_model": "recogniser_model",
}
ALIASES = {"people": "person", "org": "organization", "organisation": "organization",
           "place": "location", "places": "location", "topics": "topic", "lang": "language",
           "tags": "tag", "keywords": "keyword", "authors": "author",
           "recognizer": "recogniser"}  # fmt: skip
TIME_FACET = "time"
TEXT_FIELDS = ("title^3", "summary^2", "body")
HIT_FIELDS = ("id", "url", "title", "published_at", "source", "language", "topics", "entities")


def facet_field(name: str) -> str:
    """The index field behind a facet name (also accepts the field name itself)."""
    key = ALIASES.get(name, name)
    if key in FACETS:
        return FACETS[key]
    if key in FACETS.values():
        return key
    known = ", ".join([*FACETS, TIME_FACET])
    raise ConfigError(f"unknown facet {name!r}; known facets: {known}")


def parse_filter(text: str) -> tuple[str, str]:
    """``person=John Kerry`` -> (``entities.person``, ``John Kerry``)."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise ConfigError(f"filter {text!r} is not FIELD=VALUE")
    return facet_field(name.strip()), value.strip()


def parse_duration(text: str) -> int:
    """``90s``, ``15m``, ``1h``, ``2d`` -> seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", text)
    if not match:
        raise ConfigError(f"duration {text!r} is not a number followed by s, m, h or d")
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


@dataclass(frozen=True)
class SearchRequest:
    """What the user asked for."""

    query: str = ""
    facets: Sequence[str] = ()
    filters: Sequence[str] = ()
    since: str | None = None
    until: str | None = None
    size: int = 10
    offset: int = 0
    sort: str = "relevance"  # or "date"
    facet_size: int = 10


def query_clause(query: str, filters: Sequence[str] = ()) -> dict[str, Any]:
    """The ``bool`` query for ``query`` and facet ``filters``: what ``newswire search`` asks
    and what a standing query matches (one meaning for both). The query is checked by
    :func:`pipeline.search.syntax.parse_query` first (QuerySyntaxError with the position)."""
    parse_query(query)
    must: list[dict[str, Any]] = []
    if query.strip():
        must.append(
            {
                "simple_query_string": {
                    "query": query,
                    "fields": list(TEXT_FIELDS),
                    "default_operator": "and",
                }
            }
        )
    terms: list[dict[str, Any]] = [
        {"term": {field_name: value}} for field_name, value in (parse_filter(f) for f in filters)
    ]
    return {"bool": {"must": must or [{"match_all": {}}], "filter": terms}}


def build_body(request: SearchRequest) -> dict[str, Any]:
    """The search request body, the same for Elasticsearch and OpenSearch."""
    query = query_clause(request.query, request.filters)
    filters: list[dict[str, Any]] = query["bool"]["filter"]
    if request.since or request.until:
        bounds = {k: v for k, v in (("gte", request.since), ("lte", request.until)) if v}
        filters.append({"range": {"published_at": bounds}})
    body: dict[str, Any] = {
        "query": query,
        "size": request.size,
        "from": request.offset,
        "track_total_hits": True,
        "_source": {"excludes": ["body", "mentions"]},
        "highlight": {
            "fields": {
                "title": {"number_of_fragments": 0},
                "summary": {"fragment_size": 160, "number_of_fragments": 1},
                "body": {"fragment_size": 160, "number_of_fragments": 2},
            },
            "pre_tags": ["**"],
            "post_tags": ["**"],
        },
    }
    if request.sort == "date":
        body["sort"] = [{"published_at": {"order": "desc", "missing": "_last"}}, "_score"]
    aggs: dict[str, Any] = {}
    for name in request.facets:
        if name == TIME_FACET:
            aggs[name] = {
                "date_histogram": {
                    "field": "published_at",
                    "calendar_interval": "day",
                    "min_doc_count": 1,
                    "format": "yyyy-MM-dd",
                }
            }
        else:
            aggs[name] = {"terms": {"field": facet_field(name), "size": request.facet_size}}
    if aggs:
        body["aggs"] = aggs
    return body


@dataclass
class SearchResult:
    """The ``--json`` contract: total, hits and facets."""

    total: int
    hits: list[dict[str, Any]] = field(default_factory=list)
    facets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"total": self.total, "hits": self.hits, "facets": self.facets}


def shape_response(response: dict[str, Any], request: SearchRequest) -> SearchResult:
    """Turn an engine response into the contract's shape."""
    hits_block = response.get("hits", {})
    total_block = hits_block.get("total", 0)
    total = int(total_block["value"] if isinstance(total_block, dict) else total_block)
    hits: list[dict[str, Any]] = []
    for hit in hits_block.get("hits", []):
        source = hit.get("_source", {})
        item = {name: source.get(name) for name in HIT_FIELDS}
        item["id"] = source.get("id", hit.get("_id"))
        item["highlight"] = hit.get("highlight", {})
        hits.append(item)
    facets: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for name in request.facets:
        buckets = response.get("aggregations", {}).get(name, {}).get("buckets", [])
        facets[name] = [
            {"value": b.get("key_as_string", b.get("key")), "count": int(b["doc_count"])}
            for b in buckets
        ]
    return SearchResult(total, hits, dict(facets))
