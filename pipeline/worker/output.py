"""The worker's Kafka output: one producer, and sending through a Kafka outage.

A send that Kafka cannot take (a broker restarting, a leader election) is made again
through a new producer, with backoff, until Kafka takes it or the worker is asked to
stop (the batch is then handed back, unacknowledged)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import structlog
from aiokafka import AIOKafkaProducer

from pipeline import metrics
from pipeline.backoff import backoff_delay
from pipeline.errors import HandedBackError
from pipeline.kafka.client import (
    abandon,
    bootstrap,
    kafka_retriable,
    make_producer,
    send_all,
    start_client,
)
from pipeline.settings import Settings
from pipeline.worker.stopping import stop_requested_within

log = structlog.get_logger(__name__)
ResultT = TypeVar("ResultT")

#: The worker's producer linger (milliseconds).
PRODUCER_LINGER_MS = 2
#: Bytes per partition per produce request. aiokafka's default (16 KiB) holds three
#: enriched articles, so a batch of 64 took several acks=all round trips one after another.
PRODUCER_BATCH_BYTES = 1024 * 1024
#: Backoff while Kafka cannot take the worker's output (a broker restarting), seconds.
KAFKA_RETRY_FIRST = 0.5
KAFKA_RETRY_CAP = 5.0
#: The worker's producer gives up on records it cannot send (no leader known, the broker
#: away) after this long; the batch is then sent again through a new producer, with
#: backoff, so an outage costs a few reconnects instead of aiokafka's busy metadata loop.
PRODUCE_TIMEOUT_MS = 15000


class KafkaOutput:
    """The worker's producer, connected on first use and replaced after an outage."""

    def __init__(self, settings: Settings, stopping: asyncio.Event) -> None:
        self.settings = settings
        self.stopping = stopping
        self.producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        """Connect the producer (idempotent)."""
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
                if not await stop_requested_within(self.stopping, delay):
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

    async def stop(self) -> None:
        """Flush and close the producer."""
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None


__all__ = ["KafkaOutput"]
