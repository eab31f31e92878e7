"""The enrich stage's story path: exact duplicates dropped and story clusters assigned
against the story table every worker shares in the search engine
(:mod:`pipeline.sinks.story_table`), one round trip per batch (:func:`story_batch`)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import structlog

from pipeline import metrics
from pipeline.enrich.dedup import (
    Signature,
    StoryStore,
    assign_cluster,
    fingerprint,
    normalize_text,
    story_signature,
)
from pipeline.models import RawArticle
from pipeline.settings import Settings
from pipeline.sinks.backend import SearchBackend
from pipeline.sinks.engines import open_backend
from pipeline.sinks.story_table import SearchStoryStore
from pipeline.sinks.story_twins import moved

log = structlog.get_logger(__name__)

#: Fewer words than this and two articles are not called exact duplicates.
DEDUP_MIN_WORDS = 40
#: Seconds between two checks for story-table day indices past the window.
EXPIRE_EVERY = 3600.0


class StoryTableSlot:
    """This worker's handle on the shared story table, opened on first use (nothing to
    load: a restart asks the engine like any batch) and closed with the worker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store: SearchStoryStore | None = None
        self._backend: SearchBackend | None = None
        self._expired_at = -EXPIRE_EVERY

    def start(self) -> SearchStoryStore:
        """The store (its index template is put by ``setup``)."""
        if self.store is None:
            self._backend = open_backend(self.settings)
            self.store = SearchStoryStore(
                self._backend,
                self.settings.story_table_index,
                window_seconds=self.settings.story_window_days * 86400,
            )
        return self.store

    async def expire_when_due(self) -> None:
        """Delete the day indices past the window, at most once per ``EXPIRE_EVERY``
        (every worker may: deleting a missing index is skipped). Failures are logged: the
        lookups filter on time, so a late deletion costs disk, not correctness."""
        now = time.monotonic()
        if self.store is None or now - self._expired_at < EXPIRE_EVERY:
            return
        self._expired_at = now
        try:
            expired = await self.store.expire()
        except Exception as exc:
            log.warning("story_table.expire_failed", error=str(exc))
            return
        metrics.STORY_TABLE_EXPIRED.inc(len(expired))

    async def stop(self) -> None:
        if self._backend is not None:
            await self._backend.close()
        self._backend = self.store = None


def story_keys(article: RawArticle) -> tuple[str | None, Signature]:
    """An article's exact-duplicate fingerprint (None when it has too few words to call
    two articles the same) and its MinHash signature."""
    parts = (article.title, article.summary, article.body)
    words = sum(len(normalize_text(p).split()) for p in parts if p)
    fp = fingerprint(*parts) if words >= DEDUP_MIN_WORDS else None
    return fp, story_signature(article.title, article.summary, article.body)


@dataclass
class StoryBatch:
    """One batch through the story path: the articles kept (with fingerprints) and their
    clusters in order, and the exact copies dropped with their original and its cluster."""

    kept: list[tuple[RawArticle, str | None]]
    clusters: list[str]
    copies: list[tuple[RawArticle, str, str]]

    def settled(self, moves: Mapping[str, str]) -> StoryBatch:
        """The batch with the clusters that adopted a concurrently founded twin
        (:meth:`SearchStoryStore.settle`: {cluster left: cluster adopted}) replaced."""
        if not moves:
            return self
        copies = [(a, original, moves.get(c, c)) for a, original, c in self.copies]
        return StoryBatch(self.kept, moved(self.clusters, moves), copies)


async def story_batch(
    articles: Sequence[RawArticle], store: SearchStoryStore, *, flush: bool = True
) -> StoryBatch:
    """The worker's story path for one batch: ask the engine about the batch (one msearch
    and one search), drop exact duplicates, assign clusters, write the batch's records
    (one refreshed bulk request) and settle the race with concurrent writers (one msearch
    when the batch founded clusters, :func:`write_stories`); with ``flush`` False the
    caller does the last two, e.g. while it enriches, and applies :meth:`StoryBatch.settled`.
    What a failed round wrote is written again by the retry (same ids) and nothing of the
    batch is acknowledged before it succeeds."""
    keys = [story_keys(article) for article in articles]
    await store.prefetch([sig for _, sig in keys], [fp for fp, _ in keys])
    signatures = {article.id: sig for article, (_, sig) in zip(articles, keys, strict=True)}
    copies: list[tuple[RawArticle, str, str | None]] = []
    kept = drop_duplicates(articles, store, copies, [fp for fp, _ in keys])
    clusters = assign_clusters(kept, store, signatures)
    batch = StoryBatch(kept, clusters, copy_clusters(copies, kept, clusters))
    if flush:
        batch = batch.settled(await write_stories(store))
    return batch


async def write_stories(store: SearchStoryStore) -> dict[str, str]:
    """Write the batch's story documents (refreshed) and settle the race with concurrent
    writers (:meth:`SearchStoryStore.settle`); returns {cluster left: cluster adopted}."""
    await store.flush()
    moves = await store.settle()
    if moves:
        metrics.STORY_TWINS_ADOPTED.inc(len(moves))
    return moves


def drop_duplicates(
    articles: Sequence[RawArticle],
    stories: StoryStore,
    copies: list[tuple[RawArticle, str, str | None]] | None = None,
    fingerprints: Sequence[str | None] | None = None,
) -> list[tuple[RawArticle, str | None]]:
    """The articles that are not exact duplicates, each with its fingerprint (None when
    too short to have one). Exact duplicates (same normalised text under another id,
    remembered in ``stories`` or earlier in this batch) are dropped, logged and
    counted; a revision of the same id is not a duplicate, and neither are short items
    ("Morning briefing" under two URLs). Each dropped copy is added to ``copies`` with its
    original's id and story cluster (None when the original is earlier in this batch: its
    cluster is assigned with the batch's, :func:`copy_clusters`). ``fingerprints``: the
    articles' :func:`story_keys` fingerprints when already computed."""
    kept: list[tuple[RawArticle, str | None]] = []
    in_batch: dict[str, str] = {}
    for n, article in enumerate(articles):
        key = fingerprints[n] if fingerprints is not None else story_keys(article)[0]
        if key is None:
            kept.append((article, None))  # too little text to call two articles the same
            continue
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
    kept: Sequence[tuple[RawArticle, str | None]],
    stories: StoryStore,
    signatures: dict[str, Signature] | None = None,
) -> list[str]:
    """The story cluster of each article (in order); each is remembered in
    ``stories`` with its fingerprint, so later copies are dropped as duplicates.
    ``signatures``: the articles' signatures by id when already computed."""
    known = signatures or {}
    return [
        assign_cluster(
            known[article.id]
            if article.id in known
            else story_signature(article.title, article.summary, article.body),
            stories,
            new_cluster_id=article.id,
            article_id=article.id,
            fp=fp,
        )
        for article, fp in kept
    ]


__all__ = [
    "DEDUP_MIN_WORDS",
    "StoryBatch",
    "StoryTableSlot",
    "assign_clusters",
    "copy_clusters",
    "drop_duplicates",
    "story_batch",
    "story_keys",
    "write_stories",
]
