"""Kafka connector: topics, an idempotent producer and record (de)serialisation."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from pipeline.errors import ConfigError
from pipeline.models import RawArticle
from pipeline.settings import Settings

log = structlog.get_logger(__name__)

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
    """A producer with ``acks=all`` and idempotence (DESIGN.md delivery guarantees)."""
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


async def publish_raw(
    producer: AIOKafkaProducer, topic: str, articles: Iterable[RawArticle]
) -> int:
    """Send raw articles keyed by id and wait until the broker acknowledged all of them."""
    futures = [
        await producer.send(topic, value=encode(article), key=article.id.encode("ascii"))
        for article in articles
    ]
    for future in futures:
        await future
    return len(futures)


async def ensure_topics(settings: Settings) -> list[str]:
    """Create the raw, enriched and DLQ topics if missing; returns the ones created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap(settings))
    await admin.start()
    created: list[str] = []
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name,
                num_partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication,
            )
            for name in (settings.topic_raw, settings.topic_enriched, settings.topic_dlq)
            if name not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
            created = [t.name for t in wanted]
            log.info("kafka.topics_created", topics=created)
    finally:
        await admin.close()
    return created
