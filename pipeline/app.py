"""The Faust worker: an enrichment agent (raw -> enriched) and a sink agent (enriched -> index).

Both agents take micro-batches with manual acknowledgement: an input event is acked, and so
its offset becomes committable, only after its output is safe (the enriched record acked by
Kafka, or the document acknowledged by the search engine, or the record in the DLQ).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, NoReturn, TypeVar, cast

import faust
import structlog
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from pipeline import PIPELINE_VERSION, metrics
from pipeline.enrich.dedup import (
    assign_cluster,
    check_exact_duplicate,
    fingerprint,
    normalize_text,
    story_signature,
)
from pipeline.errors import RetryableError
from pipeline.kafka import ReplicatedTable, bootstrap, encode, make_producer, send_all, start_client
from pipeline.models import EnrichedArticle, Enrichment, RawArticle, utcnow
from pipeline.settings import Settings
from pipeline.sinks.backend import open_backend
from pipeline.sinks.indexer import Indexer, install_index

log = structlog.get_logger(__name__)
Values = Sequence[tuple[bytes | None, dict[str, Any]]]
BatchHandler = Callable[[Values], Awaitable[int]]


def dlq_record(event_value: bytes | None, reason: str, stage: str, **where: Any) -> dict[str, Any]:
    """A DLQ record: why, where it came from, and the original record untouched."""
    original: Any
    try:
        original = json.loads(event_value) if event_value is not None else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        original = (event_value or b"").decode("utf-8", errors="replace")
    return {
        "reason": reason,
        "stage": stage,
        "failed_at": utcnow().isoformat(),
        "pipeline_version": PIPELINE_VERSION,
        **where,
        "original": original,
    }


def _where(event: Any) -> dict[str, Any]:
    message = event.message
    key = message.key.decode("utf-8", errors="replace") if message.key else None
    return {
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "key": key,
    }


def _validation_reason(exc: ValidationError) -> str:
    return "invalid record: " + "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()
    )


RecordT = TypeVar("RecordT", bound=RawArticle)


def _decode(
    values: Values, model: type[RecordT], stage: str
) -> tuple[list[tuple[RecordT, bytes | None, dict[str, Any]]], list[dict[str, Any]]]:
    """Records that parse as ``model`` (with their origin), and DLQ records for the rest."""
    decoded: list[tuple[RecordT, bytes | None, dict[str, Any]]] = []
    dead: list[dict[str, Any]] = []
    for value, where in values:
        try:
            decoded.append((model.model_validate_json(value or b""), value, where))
        except ValidationError as exc:
            metrics.WORKER_BAD_INPUT.labels("invalid_record").inc()
            dead.append(dlq_record(value, _validation_reason(exc), stage, **where))
    return decoded, dead


class Worker:
    """The two agents' work, kept apart from Faust so it can be driven by tests too."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer: AIOKafkaProducer | None = None
        self.indexer: Indexer | None = None
        self.stories: ReplicatedTable | None = None
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nlp")
        self._enricher: Any = None

    async def start(self) -> None:
        """Connect the producer and the search backend (idempotent)."""
        if self.producer is None:
            self.producer = make_producer(self.settings)
            await start_client(self.producer, bootstrap(self.settings))
        if self.indexer is None:
            backend = open_backend(self.settings)
            # Idempotent: a worker started before `newswire setup` still writes into the
            # strict, templated index behind the alias, never an auto-created one.
            await install_index(backend, self.settings.index_alias)
            self.indexer = Indexer(
                backend, self.settings.index_alias, escalate_after=self.settings.max_retries
            )

    async def start_stories(self) -> ReplicatedTable:
        """The duplicate / story-cluster table, loaded whole on first use."""
        if self.stories is None:
            table = ReplicatedTable(
                self.settings,
                self.settings.topic_stories,
                ttl_seconds=self.settings.story_window_days * 86400,
            )
            await table.start()
            self.stories = table
        return self.stories

    async def stop(self) -> None:
        """Flush and close connections."""
        if self.stories is not None:
            await self.stories.stop()
            self.stories = None
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None
        if self.indexer is not None:
            await self.indexer.backend.close()
            self.indexer = None

    def enricher(self) -> Any:
        """The NLP enricher, created (and its model loaded) once per process."""
        if self._enricher is None:
            from pipeline.enrich.enricher import Enricher

            self._enricher = Enricher()
        return self._enricher

    async def send_dlq(self, records: Sequence[dict[str, Any]]) -> None:
        """Publish DLQ records and wait for the broker's acknowledgement."""
        assert self.producer is not None
        await send_all(
            self.producer,
            self.settings.topic_dlq,
            (((r.get("key") or "").encode("utf-8") or None, encode(r)) for r in records),
        )
        for record in records:
            metrics.WORKER_RECORDS.labels(record["stage"], "dlq").inc()
            log.error(
                "dlq.sent", stage=record["stage"], key=record.get("key"), reason=record["reason"]
            )

    async def enrich_batch(self, values: Values) -> int:
        """Enrich raw records and publish them; returns how many went to the enriched topic."""
        await self.start()
        assert self.producer is not None
        decoded, dead = _decode(values, RawArticle, "enrich")
        articles = [self._capped(article, where) for article, _, where in decoded]
        stories = await self.start_stories()
        articles = self._drop_duplicates(articles, stories)
        enriched: list[EnrichedArticle] = []
        if articles:
            results = await self._enrich_until_done(articles)
            now = utcnow()
            for article, enrichment in zip(articles, results, strict=True):
                enriched.append(
                    EnrichedArticle(
                        **article.model_dump(),
                        **enrichment.model_dump(),
                        enriched_at=now,
                        pipeline_version=PIPELINE_VERSION,
                        cluster_id=assign_cluster(
                            story_signature(article.title, article.summary, article.body),
                            stories,
                            new_cluster_id=article.id,
                        ),
                    )
                )
        await send_all(
            self.producer,
            self.settings.topic_enriched,
            ((a.id.encode("utf-8"), a.model_dump_json().encode("utf-8")) for a in enriched),
        )
        await stories.flush(self.producer)
        metrics.WORKER_RECORDS.labels("enrich", "enriched").inc(len(enriched))
        if dead:
            await self.send_dlq(dead)
        return len(enriched)

    async def _enrich_until_done(self, articles: list[RawArticle]) -> list[Enrichment]:
        """Enrich in the NLP thread; while the recogniser is unavailable, wait and retry.

        Nothing is acknowledged meanwhile, and no article is published without entities."""
        loop = asyncio.get_running_loop()
        delay = RECOGNISER_RETRY_FIRST
        while True:
            try:
                with metrics.ENRICH_SECONDS.time():
                    results: list[Enrichment] = await loop.run_in_executor(
                        self.executor, self.enricher().enrich, articles
                    )
                return results
            except RetryableError as exc:
                wait = min(max(exc.retry_after or 0.0, delay), RECOGNISER_RETRY_CAP)
                metrics.ENRICH_RETRIES.inc()
                log.warning(
                    "enrich.recogniser_unavailable",
                    error=str(exc),
                    articles=len(articles),
                    retry_in=round(wait, 1),
                )
                await asyncio.sleep(wait)
                delay = min(delay * 2, RECOGNISER_RETRY_CAP)

    @staticmethod
    def _drop_duplicates(
        articles: Sequence[RawArticle], stories: ReplicatedTable
    ) -> list[RawArticle]:
        """Exact duplicates (same normalised text under another id) are dropped, logged and
        counted; a revision of the same id is not a duplicate, and neither are short items
        ("Morning briefing" under two URLs)."""
        kept: list[RawArticle] = []
        for article in articles:
            parts = (article.title, article.summary, article.body)
            if sum(len(normalize_text(p).split()) for p in parts if p) < DEDUP_MIN_WORDS:
                kept.append(article)  # too little text to call two articles the same
                continue
            key = fingerprint(*parts)
            original = check_exact_duplicate(key, stories, article.id)
            if original is None:
                kept.append(article)
                continue
            metrics.WORKER_RECORDS.labels("enrich", "duplicate").inc()
            log.info("enrich.duplicate_dropped", id=article.id, duplicate_of=original)
        return kept

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

    async def index_batch(self, values: Values) -> int:
        """Index enriched records; permanent failures go to the DLQ. Returns docs acked."""
        await self.start()
        assert self.indexer is not None
        decoded, dead = _decode(values, EnrichedArticle, "sink")
        articles = [article for article, _, _ in decoded]
        origin = {article.id: (value, where) for article, value, where in decoded}
        result = await self.indexer.write(articles)
        metrics.WORKER_RECORDS.labels("sink", "indexed").inc(len(result.indexed))
        metrics.WORKER_RECORDS.labels("sink", "stale").inc(len(result.stale))
        metrics.INDEX_RETRIES.inc(result.retries)
        for article, reason in result.rejected:
            metrics.WORKER_BAD_INPUT.labels("rejected_by_index").inc()
            value, where = origin[article.id]
            dead.append(dlq_record(value, f"rejected by the index: {reason}", "sink", **where))
        if dead:
            await self.send_dlq(dead)
        return len(result.indexed) + len(result.stale)


#: Backoff while the entity recogniser is unavailable (seconds): doubles up to the cap.
RECOGNISER_RETRY_FIRST = 1.0
RECOGNISER_RETRY_CAP = 60.0

#: Fewer words than this and two articles are not called exact duplicates.
DEDUP_MIN_WORDS = 40

#: Exit status of a worker that stopped itself on an unexpected error (EX_SOFTWARE).
FAIL_STOP_EXIT = 70


def fail_stop(stage: str, exc: BaseException, records: int) -> NoReturn:
    """Stop the process at once on an unexpected error in a batch.

    Faust would restart the agent and go on acknowledging later events, and its commit
    logic can then move the committed offset past the failed batch: records lost. Exiting
    without acknowledging anything more is what a SIGKILL does, which the delivery
    guarantees already cover: the batch is redelivered when the worker is restarted (by
    docker compose, Kubernetes, or `newswire run`'s report).
    """
    log.critical(
        "worker.fail_stop",
        stage=stage,
        records=records,
        error=f"{type(exc).__name__}: {exc}",
        exc_info=exc,
        exit_code=FAIL_STOP_EXIT,
    )
    logging.shutdown()
    os._exit(FAIL_STOP_EXIT)


class FaustWorker(faust.Worker):
    """Faust's worker with Newswire's structured logging instead of Faust's own format."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.newswire_settings = settings
        super().__init__(app, loglevel=settings.log_level.lower(), redirect_stdouts=False)

    def on_setup_root_logger(self, logger: Any, level: int) -> None:
        from pipeline.logs import configure

        configure(self.newswire_settings.log_level, self.newswire_settings.log_format)


def create_app(settings: Settings, worker: Worker | None = None) -> faust.App:
    """The Faust app with the topics of DESIGN.md and the two agents (``worker`` is the
    work they call; tests pass a stand-in)."""
    datadir = settings.home / "worker"
    datadir.mkdir(parents=True, exist_ok=True)  # Faust does not create it
    app = faust.App(
        settings.worker_id,
        broker=f"kafka://{bootstrap(settings)}",
        store="memory://",
        datadir=str(datadir),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        processing_guarantee="at_least_once",
        broker_commit_interval=1.0,
        broker_session_timeout=settings.worker_session_timeout,
        web_host=settings.worker_web_host,
        web_bind=settings.worker_web_host,
        web_port=settings.worker_web_port or 6066,
        web_enabled=settings.worker_web_port > 0,
        stream_wait_empty=True,
        logging_config=None,
    )
    raw = app.topic(settings.topic_raw, key_type=bytes, value_type=bytes, value_serializer="raw")
    enriched_topic = app.topic(
        settings.topic_enriched, key_type=bytes, value_type=bytes, value_serializer="raw"
    )
    worker = worker or Worker(settings)
    within = timedelta(seconds=settings.batch_seconds)

    async def consume(stream: Any, stage: str, handle: BatchHandler) -> None:
        """Micro-batches; each event is acked only once ``handle`` made its output safe."""
        async for events in stream.noack_take(settings.batch_size, within=within):
            try:
                done = await handle([(e.value, _where(e)) for e in events])
            except Exception as exc:
                fail_stop(stage, exc, len(events))
            for event in events:
                await stream.ack(event)
            log.info(f"{stage}.batch", records=len(events), done=done)

    @app.agent(raw, name="enrich")
    async def enrich(stream: Any) -> None:
        await consume(stream, "enrich", worker.enrich_batch)

    @app.agent(enriched_topic, name="sink")
    async def sink(stream: Any) -> None:
        await consume(stream, "sink", worker.index_batch)

    @app.page("/metrics/")
    async def prometheus(web: Any, request: Any) -> Any:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    async def _close(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        await worker.stop()

    app.on_before_shutdown.connect(cast(Any, _close))  # mode types miss async receivers
    return app
