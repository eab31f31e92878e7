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
    exact_duplicate_of,
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
    articles: Sequence[RawArticle], stories: StoryStore
) -> list[tuple[RawArticle, str | None]]:
    """The articles that are not exact duplicates, each with its fingerprint (None when
    too short to have one). Exact duplicates (same normalised text under another id,
    remembered in ``stories`` or earlier in this batch) are dropped, logged and
    counted; a revision of the same id is not a duplicate, and neither are short items
    ("Morning briefing" under two URLs)."""
    kept: list[tuple[RawArticle, str | None]] = []
    in_batch: dict[str, str] = {}
    for article in articles:
        parts = (article.title, article.summary, article.body)
        if sum(len(normalize_text(p).split()) for p in parts if p) < DEDUP_MIN_WORDS:
            kept.append((article, None))  # too little text to call two articles the same
            continue
        key = fingerprint(*parts)
        original = exact_duplicate_of(key, stories, article.id)
        if original is None:
            earlier = in_batch.setdefault(key, article.id)
            original = None if earlier == article.id else earlier
        if original is None:
            kept.append((article, key))
            continue
        metrics.WORKER_RECORDS.labels("enrich", "duplicate").inc()
        log.info("enrich.duplicate_dropped", id=article.id, duplicate_of=original)
    return kept


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


__all__ = ["DEDUP_MIN_WORDS", "StoryTableSlot", "assign_clusters", "drop_duplicates"]
