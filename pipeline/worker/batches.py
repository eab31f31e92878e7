"""The work of the worker's two agents, kept apart from Faust so tests can drive it.

``enrich_batch``: raw records -> validated, capped, exact duplicates dropped, enriched,
story cluster assigned -> the enriched topic. ``index_batch``: enriched records -> the
search index. Records that cannot be handled go to the DLQ (:mod:`pipeline.worker.dlq`)
with the reason; either way the batch's output is safe (acknowledged) when these return.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import structlog
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from pipeline import PIPELINE_VERSION, metrics
from pipeline.backoff import backoff_delay
from pipeline.enrich.dedup import (
    StoryStore,
    assign_cluster,
    exact_duplicate_of,
    fingerprint,
    normalize_text,
    story_signature,
)
from pipeline.enrich.stories import StoryIndex
from pipeline.errors import HandedBackError, RetryableError
from pipeline.kafka.client import (
    abandon,
    bootstrap,
    encode,
    kafka_retriable,
    make_producer,
    send_all,
    start_client,
)
from pipeline.kafka.stories import StoryTable
from pipeline.models import (
    EnrichedArticle,
    Enrichment,
    RawArticle,
    drop_unknown_fields,
    utcnow,
)
from pipeline.settings import Settings
from pipeline.sinks.backend import SearchBackend
from pipeline.sinks.engines import open_backend
from pipeline.sinks.indexer import Indexer, install_index
from pipeline.worker.dlq import dlq_record

log = structlog.get_logger(__name__)
Values = Sequence[tuple[bytes | None, dict[str, Any]]]

#: Fewer words than this and two articles are not called exact duplicates.
DEDUP_MIN_WORDS = 40
#: The worker's producer linger (milliseconds).
PRODUCER_LINGER_MS = 2
#: Bytes per partition per produce request. aiokafka's default (16 KiB) holds three
#: enriched articles, so a batch of 64 took several acks=all round trips one after another.
PRODUCER_BATCH_BYTES = 1024 * 1024
#: A batch is cut into about this many parts per NLP thread (see ``_enrich_parts``).
PARTS_PER_THREAD = 4
#: Backoff while the entity recogniser is unavailable (seconds): doubles up to the cap.
RECOGNISER_RETRY_FIRST = 1.0
RECOGNISER_RETRY_CAP = 60.0
#: Backoff while the search engine cannot be reached to install the index (seconds).
SINK_CONNECT_FIRST = 1.0
SINK_CONNECT_CAP = 30.0
#: Backoff while Kafka cannot take the worker's output (a broker restarting), seconds.
KAFKA_RETRY_FIRST = 0.5
KAFKA_RETRY_CAP = 5.0
#: The worker's producer gives up on records it cannot send (no leader known, the broker
#: away) after this long; the batch is then sent again through a new producer, with
#: backoff, so an outage costs a few reconnects instead of aiokafka's busy metadata loop.
PRODUCE_TIMEOUT_MS = 15000


def _validation_reason(exc: ValidationError) -> str:
    return "invalid record: " + "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()
    )


RecordT = TypeVar("RecordT", bound=RawArticle)
ResultT = TypeVar("ResultT")


def decode_record(value: bytes | None, model: type[RecordT]) -> tuple[RecordT, list[str]]:
    """A Kafka record as ``model``, and the fields it had that this version does not know.

    The rule for rolling upgrades (docs/architecture.md): unknown fields, at any depth,
    are ignored (dropped before validation), so a newer producer can add fields while
    older workers still run; known fields are validated as strictly as ever. Raises
    :class:`ValidationError` for anything else (not JSON, wrong types, missing id)."""
    try:
        data = json.loads(value or b"")
    except (UnicodeDecodeError, json.JSONDecodeError):
        return model.model_validate_json(value or b""), []  # raises, with pydantic's reason
    known, unknown = drop_unknown_fields(model, data)
    return model.model_validate(known), unknown


def _decode(
    values: Values, model: type[RecordT], stage: str
) -> tuple[list[tuple[RecordT, bytes | None, dict[str, Any]]], list[dict[str, Any]]]:
    """Records that parse as ``model`` (with their origin), and DLQ records for the rest."""
    decoded: list[tuple[RecordT, bytes | None, dict[str, Any]]] = []
    dead: list[dict[str, Any]] = []
    for value, where in values:
        try:
            record, unknown = decode_record(value, model)
            decoded.append((record, value, where))
            if unknown:
                metrics.WORKER_UNKNOWN_FIELDS.labels(stage).inc()
                log.info("worker.unknown_fields_ignored", stage=stage, id=record.id, fields=unknown)
        except ValidationError as exc:
            metrics.WORKER_BAD_INPUT.labels("invalid_record").inc()
            dead.append(dlq_record(value, _validation_reason(exc), stage, **where))
    return decoded, dead


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


class Worker:
    """The two agents' work, kept apart from Faust so it can be driven by tests too."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer: AIOKafkaProducer | None = None
        self.indexer: Indexer | None = None
        self.stories: StoryTable | None = None
        self.executor = ThreadPoolExecutor(
            max_workers=settings.nlp_threads, thread_name_prefix="nlp"
        )
        self._enricher: Any = None
        self._backend: SearchBackend | None = None
        self.stopping = asyncio.Event()
        #: Wall-clock times (epoch seconds) of the last batch's steps, by stage; logged with
        #: the batch (``app.py``). Each agent runs one batch at a time.
        self.marks: dict[str, dict[str, float]] = {"enrich": {}, "sink": {}}

    async def start(self) -> None:
        """Connect the producer (idempotent). The search engine is not needed to enrich:
        the sink connects on its own, on its first batch (:meth:`start_sink`)."""
        if self.producer is None:
            # A batch's records are sent in one go, so waiting for more to batch them with
            # (the default 20 ms) would only add latency.
            producer = make_producer(
                self.settings,
                request_timeout_ms=PRODUCE_TIMEOUT_MS,
                linger_ms=PRODUCER_LINGER_MS,
                max_batch_size=PRODUCER_BATCH_BYTES,
            )
            await start_client(producer, bootstrap(self.settings))
            self.producer = producer

    async def until_kafka_takes(
        self, stage: str, action: Callable[[], Awaitable[ResultT]]
    ) -> ResultT:
        """``action`` (a start, a send through the producer), again and again while Kafka
        is away (a broker restart, a leader election): the producer is replaced, since
        its unsent records are sent again, and the wait backs off. Nothing of the batch is
        acknowledged meanwhile, so it neither fails the worker nor loses a record; the
        records sent twice are harmless (deterministic ids). A stop request hands the
        batch back; errors that retrying cannot fix are raised."""
        failures = 0
        started = time.monotonic()
        while True:
            try:
                result = await action()
                break
            except Exception as exc:
                if not kafka_retriable(exc):
                    raise
                failures += 1
                producer, self.producer = self.producer, None
                if producer is not None:
                    await abandon(producer)
                delay = backoff_delay(failures, KAFKA_RETRY_FIRST, KAFKA_RETRY_CAP)
                metrics.WORKER_KAFKA_RETRIES.labels(stage).inc()
                fields = {"stage": stage, "error": f"{type(exc).__name__}: {exc}"}
                if failures == 1:
                    log.warning("worker.kafka_unavailable", retry_in=delay, **fields)
                else:
                    log.debug("worker.kafka_unavailable", attempts=failures, **fields)
                if not await self.stop_requested_within(delay):
                    continue
                raise HandedBackError(stage, "Kafka") from exc
        if failures:
            waited = round(time.monotonic() - started, 1)
            log.info("worker.kafka_available", stage=stage, attempts=failures, waited_s=waited)
        return result

    async def send(
        self, stage: str, topic: str, records: Sequence[tuple[bytes | None, bytes]]
    ) -> int:
        """Send ``records`` and wait for the broker's acknowledgement, through whatever
        Kafka outage (:meth:`until_kafka_takes`)."""

        async def attempt() -> int:
            await self.start()
            assert self.producer is not None
            return await send_all(self.producer, topic, records)

        return await self.until_kafka_takes(stage, attempt)

    async def start_sink(self) -> Indexer:
        """The indexer, once the index is installed (idempotent: a worker started before
        `newswire setup` still writes into the strict, templated index behind the alias,
        never an auto-created one).

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
                await install_index(self._backend, self.settings.index_alias)
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
                if not await self.stop_requested_within(delay):
                    continue
                raise HandedBackError("sink", f"the search engine at {url}") from exc
        if failures:
            log.info(
                "sink.search_available",
                url=self._backend.url,
                attempts=failures,
                waited_s=round(time.monotonic() - started, 1),
            )
        self.indexer = Indexer(
            self._backend,
            self.settings.index_alias,
            escalate_after=self.settings.max_retries,
            stopping=self.stopping,
            refresh=self.settings.index_refresh,
        )
        return self.indexer

    async def stop_requested_within(self, delay: float) -> bool:
        """Wait ``delay`` seconds between tries; True at once if the worker is asked to
        stop meanwhile (the waiting batch is then handed back)."""
        try:
            await asyncio.wait_for(self.stopping.wait(), delay)
        except TimeoutError:
            return False
        return True

    def request_stop(self) -> None:
        """The worker is stopping: batches that wait (for the search engine, the entity
        recogniser) are handed back unacknowledged instead of waiting on."""
        self.stopping.set()

    async def start_stories(self) -> StoryTable:
        """The duplicate / story-cluster table, loaded on first use: the story window's
        records, at most ``NEWSWIRE_STORY_TABLE_MAX_ENTRIES``, which also bounds it."""
        if self.stories is None:
            index = StoryIndex(
                self.settings.story_table_max_entries,
                ttl_seconds=self.settings.story_window_days * 86400,
            )
            table = StoryTable(self.settings, self.settings.topic_stories, index)
            await table.start()
            self.stories = table
        return self.stories

    async def stop(self) -> None:
        """Flush and close connections (after the agents stopped: see ``app.py``)."""
        if self.stories is not None:
            await self.stories.stop()
            self.stories = None
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None
        self.indexer = None
        if self._backend is not None:
            await self._backend.close()
            self._backend = None

    def enricher(self) -> Any:
        """The NLP enricher, created (and its model loaded) once per process."""
        if self._enricher is None:
            from pipeline.enrich.enricher import Enricher

            self._enricher = Enricher()
        return self._enricher

    async def send_dlq(self, records: Sequence[dict[str, Any]]) -> None:
        """Publish DLQ records and wait for the broker's acknowledgement."""
        stage = str(records[0]["stage"]) if records else "dlq"
        await self.send(
            stage,
            self.settings.topic_dlq,
            [((r.get("key") or "").encode("utf-8") or None, encode(r)) for r in records],
        )
        for record in records:
            metrics.WORKER_RECORDS.labels(record["stage"], "dlq").inc()
            log.error(
                "dlq.sent", stage=record["stage"], key=record.get("key"), reason=record["reason"]
            )

    async def enrich_batch(self, values: Values) -> int:
        """Enrich raw records and publish them; returns how many went to the enriched topic."""
        marks = self.marks["enrich"] = {}
        decoded, dead = _decode(values, RawArticle, "enrich")
        articles = [self._capped(article, where) for article, _, where in decoded]
        stories = await self.until_kafka_takes("enrich", self.start_stories)
        kept = self.drop_duplicates(articles, stories)
        articles = [article for article, _ in kept]
        enriched: list[EnrichedArticle] = []
        if articles:
            marks["nlp_started"] = time.time()
            results = await self._enrich_until_done(articles)
            marks["nlp_done"] = time.time()
            clusters = self.assign_clusters(kept, stories)
            now = utcnow()
            for article, enrichment, cluster_id in zip(articles, results, clusters, strict=True):
                enriched.append(
                    EnrichedArticle(
                        **article.model_dump(),
                        **enrichment.model_dump(),
                        enriched_at=now,
                        pipeline_version=PIPELINE_VERSION,
                        cluster_id=cluster_id,
                    )
                )
        # The enriched records and the story table's writes in one round trip; the batch is
        # acknowledged only once both are (a redelivered article keeps its id, so finding its
        # own fingerprint in the table does not make it a duplicate).
        records = [(a.id.encode("utf-8"), a.model_dump_json().encode("utf-8")) for a in enriched]

        async def publish() -> None:
            await self.start()
            assert self.producer is not None
            await asyncio.gather(
                send_all(self.producer, self.settings.topic_enriched, records),
                stories.flush(self.producer),
            )

        await self.until_kafka_takes("enrich", publish)
        marks["sent"] = time.time()
        metrics.WORKER_RECORDS.labels("enrich", "enriched").inc(len(enriched))
        if dead:
            await self.send_dlq(dead)
        return len(enriched)

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
                if not await self.stop_requested_within(wait):
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

    @staticmethod
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

    @staticmethod
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
        indexer = await self.start_sink()
        decoded, dead = _decode(values, EnrichedArticle, "sink")
        articles = [article for article, _, _ in decoded]
        origin = {article.id: (value, where) for article, value, where in decoded}
        marks = self.marks["sink"] = {"bulk_sent": time.time()}
        result = await indexer.write(articles)
        marks["bulk_acked"] = time.time()
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


__all__ = ["DEDUP_MIN_WORDS", "Values", "Worker", "decode_record", "split_evenly"]
