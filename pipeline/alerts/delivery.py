"""Webhook deliveries: a consumer of the alerts topic, apart from ingest.

Each alert has its own queue and task, so a webhook that is down, slow or answers 500
holds back only its own deliveries: never the worker (which only writes the alerts topic)
nor other alerts. A delivery is tried ``NEWSWIRE_WEBHOOK_ATTEMPTS`` times with backoff,
then its records go to the dead-letter topic with the reason. An offset is committed only
once every record before it is delivered or dead-lettered (:class:`OffsetTracker`), so a
restart redelivers, with the same idempotency keys, what was still in flight. A
``--digest`` alert's matches wait in a window (:mod:`pipeline.alerts.digests`) whose
progress is kept in the compacted digests topic, so a restart neither loses a pending
digest nor sends a delivered one again. Each alert's last result goes to the compacted
status topic (``alerts list`` shows it; loaded again at start, so a failing webhook's
count and last error outlive a restart). URLs pass the feeds' SSRF guard: checked before
each try, and on every DNS answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from pipeline.alerts.digests import DigestBook, Item
from pipeline.alerts.model import Alert
from pipeline.alerts.registry import AlertFollower, load_digest_states, load_status
from pipeline.alerts.webhooks import Outcome, classify, headers, payload
from pipeline.backoff import backoff_delay
from pipeline.errors import FetchError
from pipeline.kafka.client import bootstrap, encode, make_producer, start_client
from pipeline.kafka.security import client_options
from pipeline.settings import Settings
from pipeline.sources.http import SafeResolver
from pipeline.sources.safety import check_url

log = structlog.get_logger(__name__)

BACKOFF_CAP = 60.0
#: Records waiting per alert; past it the record goes to the dead letters at once.
QUEUE_LIMIT = 10_000
COMMIT_EVERY = 1.0


@dataclass
class OffsetTracker:
    """Per partition: offsets in flight; the committable offset is the lowest one still in
    flight, or one past the highest seen."""

    in_flight: dict[TopicPartition, set[int]] = field(default_factory=dict)
    seen: dict[TopicPartition, int] = field(default_factory=dict)

    def add(self, tp: TopicPartition, offset: int) -> None:
        self.in_flight.setdefault(tp, set()).add(offset)
        self.seen[tp] = max(self.seen.get(tp, -1), offset)

    def done(self, tp: TopicPartition, offset: int) -> None:
        self.in_flight.get(tp, set()).discard(offset)

    def committable(self) -> dict[TopicPartition, int]:
        out = {}
        for tp, highest in self.seen.items():
            pending = self.in_flight.get(tp)
            out[tp] = min(pending) if pending else highest + 1
        return out


@dataclass(frozen=True)
class Batch:
    """One delivery: a single match, or a digest's matches."""

    items: list[Item]
    digest: bool = False


class Delivery:
    """The webhook delivery service (``newswire alerts deliver``)."""

    def __init__(self, settings: Settings, group: str | None = None) -> None:
        self.settings = settings
        self.group = group or f"{settings.worker_id}-alerts-delivery"
        self.alerts: dict[str, Alert] = {}
        self.queues: dict[str, asyncio.Queue[Batch]] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.tracker = OffsetTracker()
        self.digests = DigestBook()
        #: Per partition: when the consumer last had read all it held (digests wait for it).
        self.caught_up_at: dict[TopicPartition, float] = {}
        self.status: dict[str, dict[str, Any]] = {}
        self.delivered = 0
        self.dead = 0
        self._producer: AIOKafkaProducer | None = None
        self._session: aiohttp.ClientSession | None = None

    async def _apply(self, put: list[Alert], removed: list[str]) -> None:
        for alert in put:
            self.alerts[alert.name] = alert
        for name in removed:
            self.alerts.pop(name, None)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set."""
        follower = AlertFollower(self.settings, self._apply)
        await follower.start()
        self.status = await load_status(self.settings)
        self.digests = DigestBook(await load_digest_states(self.settings))
        self._producer = make_producer(self.settings)
        await start_client(self._producer, bootstrap(self.settings))
        connector = aiohttp.TCPConnector(
            limit=0, resolver=SafeResolver(self.settings.allow_private_feeds)
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.settings.webhook_timeout),
            headers={"User-Agent": self.settings.user_agent},
        )
        consumer = AIOKafkaConsumer(
            self.settings.topic_alerts,
            **client_options(self.settings),
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await start_client(consumer, bootstrap(self.settings))
        last_commit = time.monotonic()
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=200)
                for tp, records in batch.items():
                    for record in records:
                        self._take(tp, record.offset, record.value)
                await self._note_caught_up(consumer)
                self._flush_digests()
                if time.monotonic() - last_commit >= COMMIT_EVERY:
                    await self._commit(consumer)
                    last_commit = time.monotonic()
        finally:
            for task in self.tasks.values():
                task.cancel()
            for task in self.tasks.values():
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            with contextlib.suppress(Exception):
                await self._commit(consumer)
            await consumer.stop()
            await follower.stop()
            await self._session.close()
            await self._producer.stop()

    async def _note_caught_up(self, consumer: AIOKafkaConsumer) -> None:
        now = time.time()
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is not None and await consumer.position(tp) >= highwater:
                self.caught_up_at[tp] = now

    def _flush_digests(self) -> None:
        """Queue every digest that is due (or whose alert lost its digest or webhook)."""
        now = time.time()
        for name in [n for n, items in self.digests.pending.items() if items]:
            alert = self.alerts.get(name)
            if alert is None or not alert.webhook:
                for tp, offset, _ in self.digests.drop(name):
                    self.tracker.done(tp, offset)
                continue
            window = float(alert.digest_seconds or 0)
            items = self.digests.due(name, window, now, self.caught_up_at)
            if items:
                self._enqueue(name, Batch(items, digest=True))

    def _enqueue(self, name: str, batch: Batch) -> None:
        queue = self.queues.setdefault(name, asyncio.Queue())
        queue.put_nowait(batch)
        if name not in self.tasks or self.tasks[name].done():
            self.tasks[name] = asyncio.create_task(self._serve(name, queue), name=f"hook-{name}")

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        offsets = self.tracker.committable()
        if offsets:
            await consumer.commit(offsets)

    def _take(self, tp: TopicPartition, offset: int, value: bytes | None) -> None:
        self.tracker.add(tp, offset)
        try:
            record = json.loads(value or b"")
            name = str(record["alert"])
        except (ValueError, KeyError, TypeError):
            log.error("alerts.delivery_bad_record", partition=tp.partition, offset=offset)
            self.tracker.done(tp, offset)
            return
        alert = self.alerts.get(name)
        if alert is None or not alert.webhook:
            self.tracker.done(tp, offset)  # no webhook: the alerts topic is the delivery
            return
        item: Item = (tp, offset, record)
        if alert.digest_seconds or self.digests.holds(name):
            if not self.digests.take(name, item):  # delivered before a restart
                self.tracker.done(tp, offset)
            return
        queue = self.queues.setdefault(name, asyncio.Queue())
        if queue.qsize() >= QUEUE_LIMIT:
            task = asyncio.create_task(self._dead([item], "delivery queue full"))
            task.add_done_callback(lambda _: None)
            return
        self._enqueue(name, Batch([item]))

    async def _serve(self, name: str, queue: asyncio.Queue[Batch]) -> None:
        """One alert's deliveries, in order. A digest's progress is persisted before it
        is posted and after it is delivered (or dead-lettered), before its offsets may be
        committed."""
        assert self._producer is not None
        while True:
            batch = await queue.get()
            records = [record for _, _, record in batch.items]
            body, key = payload(records, digest=batch.digest)
            if batch.digest:
                state = self.digests.start_sending(name, batch.items, key)
                await self._save_digest(name, state.encode())
            await self._deliver(name, batch.items, body, key)
            if batch.digest:
                state = self.digests.finish(name, batch.items)
                await self._save_digest(name, state.encode())
            for tp, offset, _ in batch.items:
                self.tracker.done(tp, offset)

    async def _save_digest(self, name: str, value: bytes) -> None:
        """Persist a digest state; Kafka away is waited out (the digest's offsets stay
        uncommitted meanwhile, so nothing is lost if the process ends)."""
        assert self._producer is not None
        failures = 0
        while True:
            try:
                await self._producer.send_and_wait(
                    self.settings.topic_alert_digests, value=value, key=name.encode()
                )
                return
            except KafkaError as exc:
                failures += 1
                delay = backoff_delay(failures, 0.5, BACKOFF_CAP)
                log.warning("alerts.digest_state_retry", alert=name, error=str(exc), delay=delay)
                await asyncio.sleep(delay)

    async def _deliver(self, name: str, items: Sequence[Item], body: bytes, key: str) -> None:
        records = [record for _, _, record in items]
        attempt = 0
        while True:
            alert = self.alerts.get(name)  # the latest version: a changed URL applies
            if alert is None or not alert.webhook:
                return
            attempt += 1
            outcome = await self._post(alert, body, key)
            if outcome.ok:
                self.delivered += len(records)
                await self._status(name, ok=True, attempts=attempt)
                return
            await self._status(name, ok=False, error=outcome.reason, attempts=attempt)
            if not outcome.retry or attempt >= self.settings.webhook_attempts:
                # marked done by the caller, after a digest's state says so
                await self._dead(items, f"{outcome.reason} after {attempt} tries", done=False)
                return
            delay = outcome.retry_after or backoff_delay(
                attempt, self.settings.webhook_backoff, BACKOFF_CAP
            )
            log.warning("alerts.webhook_retry", alert=name, reason=outcome.reason, delay=delay)
            await asyncio.sleep(delay)

    async def _post(self, alert: Alert, body: bytes, key: str) -> Outcome:
        assert self._session is not None and alert.webhook is not None
        try:
            check_url(alert.webhook, allow_private=self.settings.allow_private_feeds)
            async with self._session.post(
                alert.webhook,
                data=body,
                headers=headers(alert.name, alert.secret, body, key),
                allow_redirects=False,
            ) as response:
                await response.read()
                return classify(response.status, retry_after=response.headers.get("Retry-After"))
        except FetchError as exc:  # refused by the SSRF guard: not retried
            return Outcome(False, False, exc.reason)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return classify(None, f"{type(exc).__name__}: {exc}".strip(": "))

    async def _dead(self, items: Sequence[Item], reason: str, *, done: bool = True) -> None:
        assert self._producer is not None
        for tp, offset, record in items:
            dead = {"reason": reason, "record": record, "at": time.time()}
            await self._producer.send_and_wait(
                self.settings.topic_alerts_dead,
                value=encode(dead),
                key=str(record.get("alert", "")).encode(),
            )
            if done:
                self.tracker.done(tp, offset)
            self.dead += 1
        log.error("alerts.dead_letters", records=len(items), reason=reason)

    async def _status(
        self, name: str, *, ok: bool, error: str | None = None, attempts: int = 1
    ) -> None:
        """Publish the alert's delivery state when it changes (and every failure)."""
        assert self._producer is not None
        old = self.status.get(name) or {}
        now = time.time()
        if ok and old.get("ok") and now - float(old.get("at") or 0) < 60:
            return
        state = {
            "alert": name,
            "ok": ok,
            "at": now,
            "attempts": attempts,
            # failed tries in a row, across restarts (the status is loaded at start)
            "failures": 0 if ok else int(old.get("failures") or 0) + 1,
            "last_error": error if not ok else old.get("last_error"),
            "last_error_at": now if not ok else old.get("last_error_at"),
        }
        self.status[name] = state
        await self._producer.send_and_wait(
            self.settings.topic_alerts_status, value=encode(state), key=name.encode()
        )


async def run_delivery(settings: Settings, stop: asyncio.Event) -> None:
    """Deliver until ``stop``; a failure (Kafka away at start) is logged and the service
    starts again with backoff, never ending the process it runs in."""
    failures = 0
    while not stop.is_set():
        try:
            await Delivery(settings).run(stop)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures += 1
            delay = backoff_delay(failures, 1.0, BACKOFF_CAP)
            log.error(
                "alerts.delivery_failed", error=f"{type(exc).__name__}: {exc}", retry_in=delay
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)


__all__ = ["Delivery", "OffsetTracker", "run_delivery"]
