"""The sink agent's batch: enriched records -> the search index (bulk writes through
:mod:`pipeline.sinks.indexer`); records the index rejects, and records that cannot be
read, go to the DLQ. The search engine is connected on the first batch, and waited for
while it is away, which holds up this agent only."""

from __future__ import annotations

import asyncio
import time

import structlog

from pipeline import metrics
from pipeline.backoff import backoff_delay
from pipeline.errors import HandedBackError, RetryableError
from pipeline.models import EnrichedArticle
from pipeline.settings import Settings
from pipeline.sinks.backend import SearchBackend
from pipeline.sinks.engines import open_backend
from pipeline.sinks.generations import rollover_conditions
from pipeline.sinks.indexer import Indexer
from pipeline.sinks.lifecycle import detect
from pipeline.sinks.mappings import check_index
from pipeline.worker.after_index import AfterIndex
from pipeline.worker.decode import Values, decode_batch
from pipeline.worker.dlq import dlq_record, send_dead_letters
from pipeline.worker.output import KafkaOutput
from pipeline.worker.stopping import stop_requested_within

log = structlog.get_logger(__name__)

#: Backoff while the search engine cannot be reached to install the index (seconds).
SINK_CONNECT_FIRST = 1.0
SINK_CONNECT_CAP = 30.0


class SinkStage:
    """The sink agent's work: its search engine connection and indexer, and the DLQ."""

    def __init__(self, settings: Settings, output: KafkaOutput, stopping: asyncio.Event) -> None:
        self.settings = settings
        self.output = output
        self.stopping = stopping
        self.indexer: Indexer | None = None
        #: Stories and standing queries, after each acknowledged bulk.
        self.after: AfterIndex | None = None
        self._backend: SearchBackend | None = None
        #: Wall-clock times (epoch seconds) of the last batch's steps; logged with the
        #: batch (``app.py``). The agent runs one batch at a time.
        self.marks: dict[str, float] = {}

    async def start(self) -> Indexer:
        """The indexer, once the index is there and maps what this version writes
        (:func:`~pipeline.sinks.mappings.check_index`): a worker started before `newswire
        setup`, or before the setup of its release, waits for it, saying why, rather than
        write into an auto-created index or send documents to the DLQ.

        While the search engine is unreachable this waits with backoff, forever, and only
        blocks the sink: the enrich agent goes on. One warning when the wait starts, one
        error past ``max_retries`` tries, one line when the engine answers."""
        if self.indexer is not None:
            return self.indexer
        failures = 0
        started = time.monotonic()
        while True:
            try:
                if self._backend is None:  # a local node that is down: found when it is up
                    self._backend = open_backend(self.settings)
                # Checked, never installed: templates are `newswire setup`'s, so an
                # operator's changes in the cluster are not overwritten at each start.
                await check_index(self._backend, self.settings.index_alias, EnrichedArticle)
                lifecycle = await detect(self._backend, self.settings)
                break
            except RetryableError as exc:
                failures += 1
                delay = backoff_delay(failures, SINK_CONNECT_FIRST, SINK_CONNECT_CAP)
                url = self._backend.url if self._backend is not None else "the local stack"
                fields = {"url": url, "error": str(exc), "retry_in": delay}
                if failures == 1:
                    log.warning("sink.search_unavailable", **fields)
                elif failures == self.settings.max_retries:
                    log.error("sink.search_still_unavailable", attempts=failures, **fields)
                else:
                    log.debug("sink.search_unavailable", attempts=failures, **fields)
                if not await stop_requested_within(self.stopping, delay):
                    continue
                raise HandedBackError("sink", f"the search engine at {url}") from exc
        if failures:
            log.info(
                "sink.search_available",
                url=self._backend.url,
                attempts=failures,
                waited_s=round(time.monotonic() - started, 1),
            )
        self.after = AfterIndex(self.settings, self._backend, self.stopping)
        self.indexer = Indexer(
            self._backend,
            self.settings.index_alias,
            escalate_after=self.settings.max_retries,
            stopping=self.stopping,
            refresh=self.settings.index_refresh,
            rollover_conditions=rollover_conditions(self.settings),
            # Where the cluster's ILM manages the alias, the worker never rolls it over.
            rollover_every=(
                0.0 if lifecycle.manager == "ilm" else self.settings.index_rollover_check_seconds
            ),
        )
        return self.indexer

    async def run(self, values: Values) -> int:
        """Index enriched records; permanent failures go to the DLQ. Returns docs acked."""
        indexer = await self.start()
        decoded, dead = decode_batch(values, EnrichedArticle, "sink")
        articles = [article for article, _, _ in decoded]
        origin = {article.id: (value, where) for article, value, where in decoded}
        marks = self.marks = {"bulk_sent": time.time()}
        result = await indexer.write(articles)
        marks["bulk_acked"] = time.time()
        assert self.after is not None
        alerts = await self.after.run(articles, result)
        if alerts:
            await self.output.send("sink", self.settings.topic_alerts, alerts)
        marks["after_index"] = time.time()
        metrics.WORKER_RECORDS.labels("sink", "alert").inc(len(alerts))
        metrics.WORKER_RECORDS.labels("sink", "indexed").inc(len(result.indexed))
        metrics.WORKER_RECORDS.labels("sink", "stale").inc(len(result.stale))
        metrics.INDEX_RETRIES.inc(result.retries)
        for article, reason in result.rejected:
            metrics.WORKER_BAD_INPUT.labels("rejected_by_index").inc()
            value, where = origin[article.id]
            dead.append(dlq_record(value, f"rejected by the index: {reason}", "sink", **where))
        if dead:
            await send_dead_letters(self.output, dead)
        return len(result.indexed) + len(result.stale)

    async def copies(self, values: Values) -> int:
        """Fold exact copies (the copies topic) into their stories; unreadable records go
        to the DLQ. Returns the copies folded."""
        await self.start()
        assert self.after is not None
        folded, bad = await self.after.copies([value for value, _ in values])
        if bad:
            dead = [dlq_record(values[n][0], why, "copies", **values[n][1]) for n, why in bad]
            await send_dead_letters(self.output, dead)
        return folded

    async def stop(self) -> None:
        """Close the search engine connection (after the agent stopped)."""
        if self.after is not None:
            await self.after.stop()
            self.after = None
        self.indexer = None
        if self._backend is not None:
            await self._backend.close()
            self._backend = None


__all__ = ["SinkStage"]
