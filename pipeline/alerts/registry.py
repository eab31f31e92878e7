"""The standing queries' list of record: a compacted Kafka topic keyed by alert name.

``alerts add/remove`` publish to it (a tombstone removes); every worker follows it
(:class:`AlertFollower`), so a change applies within about a second, without restarts.
The same pattern keeps each alert's last webhook result (the status topic) and its
digest progress (the digests topic, :mod:`pipeline.alerts.digests`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from pipeline.alerts.digests import DigestState
from pipeline.alerts.model import Alert
from pipeline.kafka.client import bootstrap, make_producer, start_client
from pipeline.kafka.compacted import CompactedFollower, read_to_end
from pipeline.kafka.security import client_options
from pipeline.kafka.topics import COMPACTED, TopicSpec, create_missing_topics, wait_partitions
from pipeline.settings import Settings

log = structlog.get_logger(__name__)

#: Partitions of the compacted alert topics: small lists, read whole by every worker.
PARTITIONS = 1


def alert_topic_specs(settings: Settings) -> list[TopicSpec]:
    """The alert topics: queries, status and digests compacted, matches and dead letters
    not."""
    return [
        TopicSpec(settings.topic_alert_queries, PARTITIONS, COMPACTED),
        TopicSpec(settings.topic_alerts_status, PARTITIONS, COMPACTED),
        TopicSpec(settings.topic_alert_digests, PARTITIONS, COMPACTED),
        TopicSpec(settings.topic_alerts, settings.topic_partitions),
        TopicSpec(settings.topic_alerts_dead, settings.topic_partitions),
    ]


async def ensure_alert_topics(settings: Settings) -> list[str]:
    return await create_missing_topics(settings, alert_topic_specs(settings))


def decode_alert(key: bytes | None, value: bytes | None) -> tuple[str, Alert | None] | None:
    """``(name, alert)`` of a queries-topic record, ``(name, None)`` for a tombstone, None
    (logged) for a record this version cannot read."""
    if key is None:
        return None
    name = key.decode("utf-8", errors="replace")
    if value is None:
        return name, None
    try:
        return name, Alert.model_validate_json(value)
    except ValidationError as exc:
        log.error("alerts.bad_record", name=name, error=str(exc).splitlines()[0])
        return None


async def publish(settings: Settings, topic: str, key: str, value: bytes | None) -> None:
    """One record (``None``: a tombstone), acknowledged by the broker."""
    await ensure_alert_topics(settings)
    producer = make_producer(settings)
    await start_client(producer, bootstrap(settings))
    try:
        await producer.send_and_wait(topic, value=value, key=key.encode("utf-8"))
    finally:
        await producer.stop()


async def save_alert(settings: Settings, alert: Alert) -> None:
    await publish(
        settings, settings.topic_alert_queries, alert.name, alert.model_dump_json().encode()
    )


async def remove_alert(settings: Settings, name: str) -> None:
    await publish(settings, settings.topic_alert_queries, name, None)


async def read_compacted(settings: Settings, topic: str) -> dict[str, bytes]:
    """The latest value per key of a compacted topic (tombstoned keys left out)."""
    await ensure_alert_topics(settings)
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False, group_id=None)
    await start_client(consumer, bootstrap(settings))
    latest: dict[str, bytes | None] = {}
    try:
        partitions = await wait_partitions(consumer, topic)

        def apply(record: Any) -> None:
            if record.key is not None:
                latest[record.key.decode("utf-8", errors="replace")] = record.value

        await read_to_end(consumer, partitions, apply)
    finally:
        await consumer.stop()
    return {k: v for k, v in latest.items() if v is not None}


async def load_alerts(settings: Settings) -> dict[str, Alert]:
    """Every standing query, by name."""
    out: dict[str, Alert] = {}
    for key, value in (await read_compacted(settings, settings.topic_alert_queries)).items():
        decoded = decode_alert(key.encode(), value)
        if decoded is not None and decoded[1] is not None:
            out[decoded[0]] = decoded[1]
    return out


async def load_status(settings: Settings) -> dict[str, dict[str, Any]]:
    """Each alert's last webhook result (``ok``, ``error``, ``at``, ``attempts``)."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in (await read_compacted(settings, settings.topic_alerts_status)).items():
        with contextlib.suppress(ValueError):
            out[key] = json.loads(value)
    return out


async def load_digest_states(settings: Settings) -> dict[str, DigestState]:
    """Each digest alert's delivered offsets and the digest it was sending, if any."""
    out: dict[str, DigestState] = {}
    for key, value in (await read_compacted(settings, settings.topic_alert_digests)).items():
        try:
            out[key] = DigestState.decode(key, value)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("alerts.bad_digest_state", name=key, error=str(exc))
    return out


Changes = Callable[[list[Alert], list[str]], Awaitable[None]]


class AlertFollower:
    """Follows the queries topic (:class:`CompactedFollower`): everything at start, then
    each change as it comes, handed to ``apply(put, removed)``."""

    def __init__(self, settings: Settings, apply: Changes, poll_ms: int = 500) -> None:
        self.settings = settings
        self.apply = apply
        self._follower = CompactedFollower(
            settings, settings.topic_alert_queries, self._apply, poll_ms=poll_ms
        )

    async def start(self) -> None:
        """Create the topics if missing, apply the whole list, then follow it."""
        await ensure_alert_topics(self.settings)
        await self._follower.start()

    async def _apply(self, records: list[Any]) -> None:
        latest: dict[str, Alert | None] = {}
        for record in records:
            decoded = decode_alert(record.key, record.value)
            if decoded is not None:
                latest[decoded[0]] = decoded[1]
        put = [a for a in latest.values() if a is not None]
        removed = [name for name, a in latest.items() if a is None]
        if put or removed:
            await self.apply(put, removed)
            log.info("alerts.applied", put=len(put), removed=len(removed))

    async def stop(self) -> None:
        await self._follower.stop()


__all__ = [
    "AlertFollower",
    "alert_topic_specs",
    "decode_alert",
    "ensure_alert_topics",
    "load_alerts",
    "load_digest_states",
    "load_status",
    "publish",
    "read_compacted",
    "remove_alert",
    "save_alert",
]
