"""The sink's alert step: after a batch is acknowledged by the index, its articles are
matched against the standing queries and each match becomes an alerts-topic record.

The worker sends those records before it acknowledges the batch, so a match is never lost
(a redelivered batch is matched again: the same records, with the same idempotency keys).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import structlog

from pipeline import metrics
from pipeline.alerts.matcher import Matcher
from pipeline.alerts.model import Alert, match_record
from pipeline.alerts.registry import AlertFollower
from pipeline.backoff import backoff_delay
from pipeline.errors import HandedBackError, RetryableError
from pipeline.kafka.client import encode
from pipeline.models import EnrichedArticle
from pipeline.settings import Settings
from pipeline.sinks.backend import SearchBackend
from pipeline.sinks.bulk import external_version

log = structlog.get_logger(__name__)


class AlertStage:
    """The standing queries (followed from their topic) and their matching."""

    def __init__(
        self, settings: Settings, backend: SearchBackend, stopping: asyncio.Event | None = None
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.matcher = Matcher(backend, settings.index_alias)
        self.follower = AlertFollower(settings, self._apply)
        self.stopping = stopping or asyncio.Event()
        #: The last batch's match time in seconds (the benchmark reads it).
        self.last_seconds = 0.0

    async def _apply(self, put: list[Alert], removed: list[str]) -> None:
        await self.matcher.put_many(put)
        for name in removed:
            self.matcher.remove(name)
        metrics.ALERTS_STANDING.set(len(self.matcher.alerts))

    async def start(self) -> None:
        await self.follower.start()

    async def stop(self) -> None:
        await self.follower.stop()

    async def records(
        self, articles: Sequence[EnrichedArticle], indexed: Sequence[str]
    ) -> list[tuple[bytes | None, bytes]]:
        """The alerts-topic records of the matches of ``articles`` whose ids are in
        ``indexed`` (acknowledged by the index now; a stale revision is not matched
        again). Waits, with backoff, while the search engine fails."""
        if not self.matcher.alerts:
            return []
        wanted = set(indexed)
        chosen = [a for a in articles if a.id in wanted]
        if not chosen:
            return []
        acked_at = time.time()
        started = time.monotonic()
        failures = 0
        while True:
            try:
                if self.settings.index_refresh == "false":
                    await self.backend.refresh(self.settings.index_alias)
                matches = await self.matcher.match([a.document() for a in chosen])
                break
            except RetryableError as exc:
                failures += 1
                delay = backoff_delay(failures, 0.5, 30.0)
                log.warning("alerts.match_retry", error=str(exc), attempt=failures, delay=delay)
                try:
                    await asyncio.wait_for(self.stopping.wait(), delay)
                except TimeoutError:
                    continue
                raise HandedBackError("sink", "the search engine (alert matching)") from exc
        self.last_seconds = time.monotonic() - started
        versions = {a.id: str(external_version(a)) for a in chosen}
        out: list[tuple[bytes | None, bytes]] = []
        for match in matches:
            doc_id = str(match.document["id"])
            record = match_record(
                match.alert,
                match.document,
                match.terms,
                version=versions[doc_id],
                indexed_at=acked_at,
            )
            out.append((match.alert.name.encode("utf-8"), encode(record)))
        metrics.ALERTS_MATCHES.inc(len(out))
        stats = self.matcher.last
        log.debug(
            "alerts.matched",
            articles=stats.articles,
            candidates=stats.candidates,
            matches=stats.matches,
            terms_s=round(stats.terms_seconds, 4),
            presearch_s=round(stats.presearch_seconds, 4),
            verify_s=round(stats.verify_seconds, 4),
            seconds=round(self.last_seconds, 4),
        )
        return out


__all__ = ["AlertStage"]
