"""The enrich agent's batch: raw records -> validated, capped, exact duplicates dropped and
story clusters assigned against the story table shared in the search engine, enriched in
the NLP threads -> the enriched topic (and exact copies to the copies topic). Records that
cannot be read go to the DLQ."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import structlog

from pipeline import PIPELINE_VERSION, metrics
from pipeline.backoff import backoff_delay
from pipeline.errors import HandedBackError, RetryableError
from pipeline.kafka.client import encode, send_all
from pipeline.models import EnrichedArticle, Enrichment, RawArticle, utcnow
from pipeline.settings import Settings
from pipeline.sinks.story_docs import copy_record
from pipeline.worker.decode import Values, decode_batch
from pipeline.worker.dlq import send_dead_letters
from pipeline.worker.output import KafkaOutput
from pipeline.worker.stopping import stop_requested_within
from pipeline.worker.story_clusters import (
    StoryBatch,
    StoryTableSlot,
    story_batch,
    write_stories,
)

log = structlog.get_logger(__name__)

#: A batch is cut into about this many parts per NLP thread (see ``_enrich_parts``).
PARTS_PER_THREAD = 4
#: Backoff while the entity recogniser is unavailable (seconds): doubles up to the cap.
RECOGNISER_RETRY_FIRST = 1.0
RECOGNISER_RETRY_CAP = 60.0
#: Backoff while the story table (the search engine) is unavailable, likewise.
STORY_RETRY_FIRST = 0.5
STORY_RETRY_CAP = 30.0

ItemT = TypeVar("ItemT")


def split_evenly(items: Sequence[ItemT], parts: int) -> list[list[ItemT]]:
    """``items`` in at most ``parts`` contiguous runs of near-equal length, none empty."""
    count = max(1, min(parts, len(items)))
    size, extra = divmod(len(items), count)
    out: list[list[ItemT]] = []
    start = 0
    for n in range(count):
        end = start + size + (1 if n < extra else 0)
        if end > start:
            out.append(list(items[start:end]))
        start = end
    return out


class EnrichStage:
    """The enrich agent's work: its NLP threads and model, its story table, its output."""

    def __init__(self, settings: Settings, output: KafkaOutput, stopping: asyncio.Event) -> None:
        self.settings = settings
        self.output = output
        self.stopping = stopping
        self.stories = StoryTableSlot(settings)
        self.executor = ThreadPoolExecutor(
            max_workers=settings.nlp_threads, thread_name_prefix="nlp"
        )
        self._enricher: Any = None
        self._template_checked = False
        #: Wall-clock times (epoch seconds) of the last batch's steps; logged with the
        #: batch (``app.py``). The agent runs one batch at a time.
        self.marks: dict[str, float] = {}

    def enricher(self) -> Any:
        """The NLP enricher, created (and its model loaded) once per process."""
        if self._enricher is None:
            from pipeline.enrich.enricher import Enricher

            self._enricher = Enricher()
        return self._enricher

    async def run(self, values: Values) -> int:
        """Enrich raw records and publish them; returns how many went to the enriched topic."""
        marks = self.marks = {}
        decoded, dead = decode_batch(values, RawArticle, "enrich")
        articles = [self._capped(article, where) for article, _, where in decoded]
        stories = await self._stories_until_done(articles)
        articles = [article for article, _ in stories.kept]
        # The batch's story documents are written (and the race with other workers settled)
        # while it is enriched, two round trips off the latency; both must be done before
        # anything of it is published.
        written = asyncio.ensure_future(self._flush_until_done())
        enriched: list[EnrichedArticle] = []
        try:
            results: list[Enrichment] = []
            if articles:
                marks["nlp_started"] = time.time()
                results = await self._enrich_until_done(articles)
                marks["nlp_done"] = time.time()
            stories = stories.settled(await written)
        except BaseException:
            written.cancel()
            raise
        if articles:
            now = utcnow()
            for article, enrichment, cluster_id in zip(
                articles, results, stories.clusters, strict=True
            ):
                enriched.append(
                    EnrichedArticle(
                        **article.model_dump(),
                        **enrichment.model_dump(),
                        enriched_at=now,
                        pipeline_version=PIPELINE_VERSION,
                        enrichment_version=self.enricher().version,
                        cluster_id=cluster_id,
                    )
                )
        records = [(a.id.encode("utf-8"), a.model_dump_json().encode("utf-8")) for a in enriched]
        # Exact copies are not enriched, but count among their story's sources (the sink
        # folds them into the stories index).
        copy_records = [
            (copy.id.encode("utf-8"), encode(copy_record(copy, original, cluster)))
            for copy, original, cluster in stories.copies
        ]
        output = self.output

        async def publish() -> None:
            await output.start()
            assert output.producer is not None
            await asyncio.gather(
                send_all(output.producer, self.settings.topic_enriched, records),
                send_all(output.producer, self.settings.topic_copies, copy_records),
            )

        await output.until_kafka_takes("enrich", publish)
        marks["sent"] = time.time()
        await self.stories.expire_when_due()
        metrics.WORKER_RECORDS.labels("enrich", "enriched").inc(len(enriched))
        if dead:
            await send_dead_letters(output, dead)
        return len(enriched)

    async def _stories_until_done(self, articles: list[RawArticle]) -> StoryBatch:
        """The batch's story path (:func:`story_batch`); while the search engine is
        unreachable, or the story table's template is missing (``newswire setup`` not run),
        wait and retry. Nothing is acknowledged meanwhile; a stop request hands the batch
        back."""
        store = self.stories.start()
        failures = 0
        while True:
            try:
                if not self._template_checked:
                    if await store.backend.get_index_template(store.prefix) is None:
                        raise RetryableError(
                            f"no index template {store.prefix!r} for the story table: run "
                            "`newswire setup`"
                        )
                    self._template_checked = True
                with metrics.STORY_TABLE_SECONDS.time():
                    return await story_batch(articles, store, flush=False)
            except RetryableError as exc:
                store.discard()
                failures += 1
                delay = backoff_delay(failures, STORY_RETRY_FIRST, STORY_RETRY_CAP)
                wait = min(max(exc.retry_after or 0.0, delay), STORY_RETRY_CAP)
                metrics.STORY_TABLE_RETRIES.inc()
                log.warning(
                    "enrich.story_table_unavailable",
                    error=str(exc),
                    articles=len(articles),
                    retry_in=round(wait, 1),
                )
                if not await stop_requested_within(self.stopping, wait):
                    continue
                raise HandedBackError("enrich", "the story table (search engine)") from exc

    async def _flush_until_done(self) -> dict[str, str]:
        """Write the batch's story documents and settle the race (:func:`write_stories`;
        returns its moves); while the engine is unreachable, wait and retry (what failed
        stays pending); a stop request hands the batch back."""
        store = self.stories.start()
        failures = 0
        while True:
            try:
                return await write_stories(store)
            except RetryableError as exc:
                failures += 1
                delay = backoff_delay(failures, STORY_RETRY_FIRST, STORY_RETRY_CAP)
                metrics.STORY_TABLE_RETRIES.inc()
                log.warning("enrich.story_table_unavailable", error=str(exc), retry_in=delay)
                if not await stop_requested_within(self.stopping, delay):
                    continue
                store.discard()
                raise HandedBackError("enrich", "the story table (search engine)") from exc
            except Exception:
                store.discard()  # a refused write is not left to fail every later batch
                raise

    async def _enrich_until_done(self, articles: list[RawArticle]) -> list[Enrichment]:
        """Enrich in the NLP threads; while the recogniser is unavailable, wait and retry.

        Nothing is acknowledged meanwhile, and no article is published without entities."""
        failures = 0
        while True:
            try:
                with metrics.ENRICH_SECONDS.time():
                    return await self._enrich_parts(articles)
            except RetryableError as exc:
                failures += 1
                delay = backoff_delay(failures, RECOGNISER_RETRY_FIRST, RECOGNISER_RETRY_CAP)
                wait = min(max(exc.retry_after or 0.0, delay), RECOGNISER_RETRY_CAP)
                metrics.ENRICH_RETRIES.inc()
                log.warning(
                    "enrich.recogniser_unavailable",
                    error=str(exc),
                    articles=len(articles),
                    retry_in=round(wait, 1),
                )
                if not await stop_requested_within(self.stopping, wait):
                    continue
                raise HandedBackError("enrich", "the entity recogniser") from exc

    async def _enrich_parts(self, articles: list[RawArticle]) -> list[Enrichment]:
        """Enrich ``articles`` in small parts spread over the NLP threads, in order.

        With a recogniser server, one thread's Python work (language, canonical names,
        topics) overlaps another's wait for the server, instead of the two taking turns.
        spaCy runs in-process and is given one part at a time."""
        enricher = self.enricher()
        loop = asyncio.get_running_loop()
        threads = self.settings.nlp_threads if enricher.recogniser.name == "corenlp" else 1
        parts = split_evenly(articles, threads * PARTS_PER_THREAD if threads > 1 else 1)
        results = await asyncio.gather(
            *(loop.run_in_executor(self.executor, enricher.enrich, part) for part in parts)
        )
        return [enrichment for part in results for enrichment in part]

    def _capped(self, article: RawArticle, where: dict[str, Any]) -> RawArticle:
        """Bodies past ``max_body_chars`` are cut (logged and counted), never dropped."""
        limit = self.settings.max_body_chars
        if article.body is None or len(article.body) <= limit:
            return article
        metrics.WORKER_BAD_INPUT.labels("oversize_body").inc()
        log.warning(
            "enrich.body_truncated", id=article.id, chars=len(article.body), kept=limit, **where
        )
        return article.model_copy(update={"body": article.body[:limit]})

    async def stop(self) -> None:
        """Close the story table (after the agent stopped)."""
        await self.stories.stop()


__all__ = ["EnrichStage", "split_evenly"]
