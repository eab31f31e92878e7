"""Story documents: one per ``cluster_id`` in the stories index, kept by the sink.

Pure: :func:`merge_story` folds a batch's articles (and exact copies under other URLs,
which are not enriched nor indexed, but are sources of their story all the same) into a
story document. Idempotent per article id: a redelivered batch changes nothing. The
sink reads, merges and writes back with optimistic concurrency (``if_seq_no``), since the
local engine has no scripted updates (:mod:`pipeline.sinks.stories`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline.models import EnrichedArticle, RawArticle

#: Article ids kept per story (for idempotence); past it, counts go on without them.
MAX_IDS = 2_000
#: Entries per counted map (entities by type, topics, sources) kept in a story document.
MAX_COUNTED = 200
#: Values listed in the ``top_*`` fields.
TOP = 10
ENTITY_TYPES = ("person", "organization", "location")


@dataclass(frozen=True)
class StoryItem:
    """What a story needs of one article or exact copy."""

    id: str
    cluster_id: str
    title: str | None
    url: str | None
    source: str | None
    domain: str | None
    seen_at: datetime
    copy_of: str | None = None
    entities: Mapping[str, Sequence[str]] = field(default_factory=dict)
    topics: Sequence[str] = ()


def item_of(article: EnrichedArticle) -> StoryItem | None:
    """The story item of an enriched article (None without a cluster)."""
    if not article.cluster_id:
        return None
    seen = article.published_at or article.fetched_at
    return StoryItem(
        id=article.id,
        cluster_id=article.cluster_id,
        title=article.title,
        url=str(article.url) if article.url else None,
        source=article.source.name if article.source else None,
        domain=article.source.domain if article.source else None,
        seen_at=seen.astimezone(UTC),
        entities={t: list(getattr(article.entities, t)) for t in ENTITY_TYPES},
        topics=[t.label for t in article.topics],
    )


def copy_record(article: RawArticle, original: str, cluster_id: str) -> dict[str, Any]:
    """The copies-topic record of an exact copy (same text under another URL) dropped
    before enrichment: what its story needs of it."""
    seen = (article.published_at or article.fetched_at).astimezone(UTC)
    return {
        "id": article.id,
        "copy_of": original,
        "cluster_id": cluster_id,
        "title": article.title,
        "url": article.url,
        "source": article.source.name,
        "domain": article.source.domain,
        "seen_at": _iso(seen),
    }


def copy_item(record: Mapping[str, Any]) -> StoryItem:
    """A copies-topic record as a story item (KeyError/ValueError when malformed)."""
    return StoryItem(
        id=str(record["id"]),
        cluster_id=str(record["cluster_id"]),
        title=record.get("title"),
        url=record.get("url"),
        source=record.get("source"),
        domain=record.get("domain"),
        seen_at=_parse(str(record["seen_at"])),
        copy_of=str(record["copy_of"]),
    )


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _bounded(counts: Counter[str]) -> dict[str, int]:
    return dict(counts.most_common(MAX_COUNTED))


def _top(counts: Mapping[str, int]) -> list[str]:
    return [name for name, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]]


def merge_story(existing: Mapping[str, Any] | None, items: Iterable[StoryItem]) -> dict[str, Any]:
    """The story document after ``items`` (all of one cluster) are added to ``existing``."""
    doc: dict[str, Any] = dict(existing or {})
    ids = list(doc.get("article_ids", []))
    known = set(ids)
    counts: dict[str, Any] = doc.get("counts") or {}
    entities = {t: Counter(counts.get(t, {})) for t in ENTITY_TYPES}
    topics = Counter(counts.get("topic", {}))
    sources = Counter(counts.get("source", {}))
    timeline = Counter(counts.get("hour", {}))
    for item in sorted(items, key=lambda i: (i.seen_at, i.id)):
        if item.id in known:
            continue
        known.add(item.id)
        if len(ids) < MAX_IDS:
            ids.append(item.id)
        doc["cluster_id"] = item.cluster_id
        first = doc.get("first_seen")
        if first is None or item.seen_at < _parse(first):
            doc.update(
                first_seen=_iso(item.seen_at),
                first_source=item.source,
                first_article=item.copy_of or item.id,
                first_url=item.url,
            )
            if item.copy_of is None or doc.get("title") is None:
                doc["title"] = item.title
        last = doc.get("last_seen")
        if last is None or item.seen_at > _parse(last):
            doc["last_seen"] = _iso(item.seen_at)
        doc["article_count"] = int(doc.get("article_count", 0)) + (item.copy_of is None)
        doc["copy_count"] = int(doc.get("copy_count", 0)) + (item.copy_of is not None)
        if item.source:
            sources[item.source] += 1
        if item.domain:
            doc["domains"] = sorted({*doc.get("domains", []), item.domain})
        for kind in ENTITY_TYPES:
            entities[kind].update(set(item.entities.get(kind, ())))
        topics.update(set(item.topics))
        timeline[item.seen_at.strftime("%Y-%m-%dT%H:00:00Z")] += 1
    doc["article_ids"] = ids
    doc["sources"] = sorted(sources)
    doc["source_count"] = len(sources)
    for kind in ENTITY_TYPES:
        doc[f"top_{kind}"] = _top(entities[kind])
    doc["top_topics"] = _top(topics)
    doc["counts"] = {
        **{kind: _bounded(entities[kind]) for kind in ENTITY_TYPES},
        "topic": _bounded(topics),
        "source": _bounded(sources),
        "hour": dict(sorted(timeline.items())[-24 * 30 :]),
    }
    doc["timeline"] = [{"hour": h, "count": c} for h, c in sorted(timeline.items())][-24 * 30 :]
    doc["updated_at"] = _iso(datetime.now(UTC))
    return doc


def group_items(items: Iterable[StoryItem]) -> dict[str, list[StoryItem]]:
    """Items by cluster id."""
    out: dict[str, list[StoryItem]] = {}
    for item in items:
        out.setdefault(item.cluster_id, []).append(item)
    return out


__all__ = ["StoryItem", "copy_item", "copy_record", "group_items", "item_of", "merge_story"]
