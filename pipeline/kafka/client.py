"""Kafka connection, the idempotent producer, and record encoding."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError

from pipeline.errors import ConfigError, KafkaUnavailableError
from pipeline.models import RawArticle
from pipeline.settings import Settings

#: Larger than any article we keep (bodies are capped by max_body_chars).
MAX_REQUEST_SIZE = 4 * 1024 * 1024


def bootstrap(settings: Settings) -> str:
    """The configured Kafka bootstrap servers, else the running local stack's."""
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    from pipeline.stack import local_endpoints

    endpoints = local_endpoints(settings)
    if endpoints and endpoints.get("kafka_bootstrap"):
        return str(endpoints["kafka_bootstrap"])
    if endpoints:
        raise ConfigError(
            "the local stack's Kafka is not running (its search node is): start it with "
            "`newswire stack up`, or set NEWSWIRE_KAFKA_BOOTSTRAP"
        )
    raise ConfigError(
        "no Kafka configured: set NEWSWIRE_KAFKA_BOOTSTRAP or start the local stack "
        "with `newswire stack up`"
    )


def encode(record: dict[str, Any] | RawArticle) -> bytes:
    """JSON bytes for a Kafka value."""
    if isinstance(record, RawArticle):
        return record.model_dump_json().encode("utf-8")
    return json.dumps(record, ensure_ascii=False, default=str).encode("utf-8")


def make_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    """A producer with ``acks=all`` and idempotence (docs/architecture.md, delivery guarantees)."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap(settings),
        "acks": "all",
        "enable_idempotence": True,
        "compression_type": "gzip",
        "linger_ms": 20,
        "max_request_size": MAX_REQUEST_SIZE,
        "client_id": f"{settings.worker_id}-producer",
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


async def start_client(client: Any, servers: str) -> None:
    """Start an aiokafka client; an unreachable broker becomes a clear error (and the
    half-started client is closed)."""
    try:
        await client.start()
    except (KafkaConnectionError, KafkaError, OSError) as exc:
        with contextlib.suppress(Exception):
            await (client.close() if hasattr(client, "close") else client.stop())
        raise KafkaUnavailableError(servers, str(exc) or type(exc).__name__) from exc


async def send_all(
    producer: AIOKafkaProducer, topic: str, records: Iterable[tuple[bytes | None, bytes]]
) -> int:
    """Send (key, value) records and wait until the broker acknowledged every one."""
    futures = [await producer.send(topic, value=value, key=key) for key, value in records]
    for future in futures:
        await future
    return len(futures)


async def publish_raw(
    producer: AIOKafkaProducer, topic: str, articles: Iterable[RawArticle]
) -> int:
    """Send raw articles keyed by id and wait until the broker acknowledged all of them."""
    return await send_all(producer, topic, ((a.id.encode("utf-8"), encode(a)) for a in articles))


def raw_publisher(
    producer: AIOKafkaProducer, topic: str
) -> Callable[[list[RawArticle]], Awaitable[int]]:
    """A publish callable for the poller: raw articles to ``topic`` through ``producer``."""

    async def publish(articles: list[RawArticle]) -> int:
        return await publish_raw(producer, topic, articles)

    return publish
