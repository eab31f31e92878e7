"""The Faust app: the topics, and the two agents (raw -> enriched, enriched -> index).

Both agents take micro-batches with manual acknowledgement: an input event is acked, and so
its offset becomes committable, only after its output is safe (the enriched record acked by
Kafka, or the document acknowledged by the search engine, or the record in the DLQ). The
work itself is :class:`pipeline.worker.batches.Worker`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, cast

import faust
import structlog

from pipeline.kafka.client import bootstrap
from pipeline.kafka.security import faust_broker_options
from pipeline.settings import Settings
from pipeline.worker.batches import Values, Worker
from pipeline.worker.failstop import fail_stop

log = structlog.get_logger(__name__)
BatchHandler = Callable[[Values], Awaitable[int]]


def _where(event: Any) -> dict[str, Any]:
    message = event.message
    key = message.key.decode("utf-8", errors="replace") if message.key else None
    return {
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "key": key,
    }


class FaustWorker(faust.Worker):
    """Faust's worker with Newswire's structured logging instead of Faust's own format."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.newswire_settings = settings
        super().__init__(app, loglevel=settings.log_level.lower(), redirect_stdouts=False)

    def on_setup_root_logger(self, logger: Any, level: int) -> None:
        from pipeline.logs import configure

        configure(self.newswire_settings.log_level, self.newswire_settings.log_format)


def create_app(settings: Settings, worker: Worker | None = None) -> faust.App:
    """The Faust app with the topics of docs/architecture.md and the two agents (``worker`` is the
    work they call; tests pass a stand-in)."""
    datadir = settings.home / "worker"
    datadir.mkdir(parents=True, exist_ok=True)  # Faust does not create it
    app = faust.App(
        settings.worker_id,
        broker=f"kafka://{bootstrap(settings)}",
        **faust_broker_options(settings),
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
