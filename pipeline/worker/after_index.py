"""What the sink does once a batch is acknowledged by the index: fold its articles (and
exact copies) into the stories index, and match them against the standing queries.

Both run before the batch's events are acknowledged, so neither a story update nor an
alert is lost when the worker stops; both are idempotent, so a redelivery is harmless.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import structlog

from pipeline.alerts.stage import AlertStage
from pipeline.models import EnrichedArticle
from pipeline.settings import Settings
from pipeline.sinks.backend import SearchBackend
from pipeline.sinks.indexer import WriteResult
from pipeline.sinks.stories import StoryWriter, install_stories_index
from pipeline.sinks.story_docs import StoryItem, copy_item, item_of

log = structlog.get_logger(__name__)


class AfterIndex:
    """The stories writer and the alert stage of one worker."""

    def __init__(
        self, settings: Settings, backend: SearchBackend, stopping: asyncio.Event | None = None
    ) -> None:
        self.settings = settings
        self.stories = StoryWriter(backend, settings.story_index)
        self.alerts = AlertStage(settings, backend, stopping)
        self._started = False
        self._backend = backend

    async def start(self) -> None:
        """Create the stories index if missing and load the standing queries (idempotent)."""
        if self._started:
            return
        await install_stories_index(self._backend, self.settings.story_index)
        await self.alerts.start()
        self._started = True

    async def stop(self) -> None:
        if self._started:
            await self.alerts.stop()
            self._started = False

    async def run(
        self, articles: Sequence[EnrichedArticle], result: WriteResult
    ) -> list[tuple[bytes | None, bytes]]:
        """Stories updated; returns the alerts-topic records of the batch's matches."""
        await self.start()
        done = set(result.indexed) | set(result.stale)
        items = [i for i in (item_of(a) for a in articles if a.id in done) if i is not None]
        if items:
            await self.stories.update(items)
        return await self.alerts.records(articles, result.indexed)

    async def copies(self, values: Sequence[bytes | None]) -> tuple[int, list[tuple[int, str]]]:
        """Fold copies-topic records into the stories index; returns (folded, the position
        and reason of each record that could not be read)."""
        await self.start()
        items: list[StoryItem] = []
        bad: list[tuple[int, str]] = []
        for n, value in enumerate(values):
            try:
                items.append(copy_item(json.loads(value or b"")))
            except (ValueError, KeyError, TypeError) as exc:
                bad.append((n, f"invalid copy record: {type(exc).__name__}: {exc}"))
        if items:
            await self.stories.update(items)
        return len(items), bad


__all__ = ["AfterIndex"]
