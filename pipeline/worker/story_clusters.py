"""The enrich stage's story table: exact duplicates dropped and story clusters assigned
against the table replicated across workers (:mod:`pipeline.kafka.stories`), which is
loaded on first use."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from pipeline import metrics
from pipeline.enrich.dedup import (
    StoryStore,
    assign_cluster,
    fingerprint,
    normalize_text,
    story_signature,
)
from pipeline.enrich.stories import StoryIndex
from pipeline.kafka.stories import StoryTable
from pipeline.models import RawArticle
from pipeline.settings import Settings

log = structlog.get_logger(__name__)

#: Fewer words than this and two articles are not called exact duplicates.
DEDUP_MIN_WORDS = 40


class StoryTableSlot:
    """This worker's story table, started on first use and stopped with the worker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.table: StoryTable | None = None

    async def start(self) -> StoryTable:
        """The duplicate / story-cluster table, loaded on first use: the story window's
        records, at most ``NEWSWIRE_STORY_TABLE_MAX_ENTRIES``, which also bounds it."""
        if self.table is None:
            index = StoryIndex(
                self.settings.story_table_max_entries,
                ttl_seconds=self.settings.story_window_days * 86400,
            )
            table = StoryTable(self.settings, self.settings.topic_stories, index)
            await table.start()
            self.table = table
        return self.table

    async def stop(self) -> None:
        if self.table is not None:
            await self.table.stop()
            self.table = None


def drop_duplicates(
    articles: Sequence[RawArticle],
    stories: StoryStore,
    copies: list[tuple[RawArticle, str, str | None]] | None = None,
) -> list[tuple[RawArticle, str | None]]:
    """The articles that are not exact duplicates, each with its fingerprint (None when
    too short to have one). Exact duplicates (same normalised text under another id,
    remembered in ``stories`` or earlier in this batch) are dropped, logged and
    counted; a revision of the same id is not a duplicate, and neither are short items
    ("Morning briefing" under two URLs). Each dropped copy is added to ``copies`` with its
    original's id and story cluster (None when the original is earlier in this batch: its
    cluster is assigned with the batch's, :func:`copy_clusters`)."""
    kept: list[tuple[RawArticle, str | None]] = []
    in_batch: dict[str, str] = {}
    for article in articles:
        parts = (article.title, article.summary, article.body)
        if sum(len(normalize_text(p).split()) for p in parts if p) < DEDUP_MIN_WORDS:
            kept.append((article, None))  # too little text to call two articles the same
            continue
        key = fingerprint(*parts)
        entry = stories.duplicate_entry(key, article.id)
        original, cluster = entry if entry is not None else (None, None)
        if original is None:
            earlier = in_batch.setdefault(key, article.id)
            original = None if earlier == article.id else earlier
        if original is None:
            kept.append((article, key))
            continue
        metrics.WORKER_RECORDS.labels("enrich", "duplicate").inc()
        log.info("enrich.duplicate_dropped", id=article.id, duplicate_of=original)
        if copies is not None:
            copies.append((article, original, cluster))
    return kept


def copy_clusters(
    copies: Sequence[tuple[RawArticle, str, str | None]],
    kept: Sequence[tuple[RawArticle, str | None]],
    clusters: Sequence[str],
) -> list[tuple[RawArticle, str, str]]:
    """The copies with their story cluster: the table's, or that of their original in
    this batch (``clusters`` in the order of ``kept``)."""
    assigned = {article.id: cluster for (article, _), cluster in zip(kept, clusters, strict=True)}
    out = []
    for article, original, cluster in copies:
        found = cluster or assigned.get(original)
        if found is not None:
            out.append((article, original, found))
    return out


def assign_clusters(
    kept: Sequence[tuple[RawArticle, str | None]], stories: StoryStore
) -> list[str]:
    """The story cluster of each article (in order); each is remembered in
    ``stories`` with its fingerprint, so later copies are dropped as duplicates."""
    return [
        assign_cluster(
            story_signature(article.title, article.summary, article.body),
            stories,
            new_cluster_id=article.id,
            article_id=article.id,
            fp=fp,
        )
        for article, fp in kept
    ]


__all__ = [
    "DEDUP_MIN_WORDS",
    "StoryTableSlot",
    "assign_clusters",
    "copy_clusters",
    "drop_duplicates",
]
