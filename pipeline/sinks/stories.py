"""The stories index: the sink folds each acknowledged batch into one document per story.

Read, merge (:func:`pipeline.sinks.story_docs.merge_story`), write back with
``if_seq_no``/``if_primary_term``: two workers updating one story never lose a write (the
loser of a 409 reads again and merges again). Merging is idempotent per article id, so a
redelivered batch changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import structlog

from pipeline.backoff import backoff_delay
from pipeline.errors import RetryableError, SearchBackendError
from pipeline.sinks.backend import SearchBackend
from pipeline.sinks.story_docs import StoryItem, group_items, merge_story
from pipeline.sinks.templates import create_missing_index, index_body

log = structlog.get_logger(__name__)
#: Tries of one batch's story updates when other workers keep winning the race.
MAX_CONFLICT_ROUNDS = 20


def stories_index_body() -> dict[str, Any]:
    return index_body("stories-index.json")


async def install_stories_index(backend: SearchBackend, name: str) -> bool:
    """Create the stories index when missing; True when created."""
    created = await create_missing_index(backend, name, "stories-index.json")
    if created:
        log.info("stories.index_created", index=name)
    return created


class StoryWriter:
    """Folds story items into the stories index."""

    def __init__(self, backend: SearchBackend, index: str) -> None:
        self.backend = backend
        self.index = index

    async def update(self, items: Sequence[StoryItem]) -> int:
        """Merge ``items`` into their stories; returns the stories written. Retryable
        engine errors are retried with backoff (the batch is not acknowledged meanwhile)."""
        pending = group_items(items)
        written = 0
        failures = 0
        rounds = 0
        while pending:
            try:
                sent, conflicts = await self._round(pending)
            except RetryableError as exc:
                failures += 1
                delay = backoff_delay(failures, 0.5, 30.0)
                log.warning("stories.retry", error=str(exc), delay=delay)
                await asyncio.sleep(delay)
                continue
            written += sent - len(conflicts)
            pending = {c: pending[c] for c in conflicts}
            rounds += 1
            if rounds >= MAX_CONFLICT_ROUNDS and pending:
                raise SearchBackendError(f"stories {sorted(pending)} kept conflicting")
        return written

    async def _round(self, pending: dict[str, list[StoryItem]]) -> tuple[int, set[str]]:
        """One read-merge-write round; returns the stories sent and those that conflicted."""
        ids = sorted(pending)
        found = await self.backend.mget(self.index, ids)
        operations: list[dict[str, Any]] = []
        for cluster, doc in zip(ids, found, strict=True):
            if doc.get("found"):
                action = {
                    "_index": self.index,
                    "_id": cluster,
                    "if_seq_no": doc["_seq_no"],
                    "if_primary_term": doc["_primary_term"],
                }
                merged = merge_story(doc["_source"], pending[cluster])
                if merged == {**doc["_source"], "updated_at": merged["updated_at"]}:
                    continue  # nothing new (a redelivery)
                operations += [{"index": action}, merged]
            else:
                action = {"_index": self.index, "_id": cluster}
                operations += [{"create": action}, merge_story(None, pending[cluster])]
        if not operations:
            return 0, set()
        response = await self.backend.bulk(operations, refresh="false")
        conflicts: set[str] = set()
        for item in response.get("items", []):
            result = next(iter(item.values()))
            status = int(result.get("status", 500))
            if status == 409:
                conflicts.add(str(result["_id"]))
            elif status >= 300:
                error = result.get("error")
                if status == 429 or status >= 500:
                    raise RetryableError(f"stories index {status}: {error}")
                raise SearchBackendError(f"stories index refused {result.get('_id')}: {error}")
        return len(operations) // 2, conflicts


__all__ = ["StoryWriter", "install_stories_index", "stories_index_body"]
