"""Creating Kafka topics: the one helper, with the one replication policy.

Every topic Newswire creates (raw, enriched, DLQ, the story table, the poller's state and
assignment topics) is created here, with ``NEWSWIRE_TOPIC_REPLICATION`` replicas; only
the partition count and the topic configuration (compaction, retention) differ.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from pipeline.errors import ConfigError
from pipeline.kafka.client import bootstrap, start_client
from pipeline.kafka.security import client_options
from pipeline.settings import Settings

log = structlog.get_logger(__name__)

#: Configuration of a compacted topic (latest record per key kept).
COMPACTED: Mapping[str, str] = {"cleanup.policy": "compact"}
#: ``config_source`` of a topic's own (dynamic) setting in DescribeConfigs v1+.
_DYNAMIC_TOPIC_CONFIG = 1
#: UNKNOWN_TOPIC_OR_PARTITION
_UNKNOWN_TOPIC = 3


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic to create when missing."""

    name: str
    partitions: int
    config: Mapping[str, str] = field(default_factory=dict)


def min_insync_replicas(settings: Settings) -> int:
    """``NEWSWIRE_TOPIC_MIN_INSYNC_REPLICAS``, or replication - 1 kept within 1..2."""
    if settings.topic_min_insync_replicas:
        return min(settings.topic_min_insync_replicas, settings.topic_replication)
    return max(1, min(2, settings.topic_replication - 1))


def replica_config(settings: Settings) -> dict[str, str]:
    """The replica settings every Newswire topic gets (nothing with one replica: the
    broker's default of 1 is the only possible value)."""
    if settings.topic_replication < 2:
        return {}
    return {"min.insync.replicas": str(min_insync_replicas(settings))}


async def create_missing_topics(
    settings: Settings, specs: Iterable[TopicSpec], servers: str | None = None
) -> list[str]:
    """Create the topics of ``specs`` that do not exist yet; returns the ones created."""
    servers = servers or bootstrap(settings)
    admin = AIOKafkaAdminClient(**client_options(settings, servers))
    await start_client(admin, servers)
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                spec.name,
                num_partitions=spec.partitions,
                replication_factor=settings.topic_replication,
                topic_configs={**replica_config(settings), **spec.config},
            )
            for spec in specs
            if spec.name not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
            log.info("kafka.topics_created", topics=[t.name for t in wanted])
        return [t.name for t in wanted]
    finally:
        await admin.close()


def retention_ms(days: float) -> str:
    """A ``retention.ms`` value for ``days``."""
    return str(round(days * 86_400_000))


def dlq_spec(settings: Settings) -> TopicSpec:
    """The DLQ topic: deleted after ``NEWSWIRE_DLQ_RETENTION_DAYS``, whatever the broker's
    default retention (which is for the article topics)."""
    return TopicSpec(
        settings.topic_dlq,
        settings.topic_partitions,
        {"cleanup.policy": "delete", "retention.ms": retention_ms(settings.dlq_retention_days)},
    )


def article_specs(settings: Settings) -> list[TopicSpec]:
    """The raw and enriched topics, kept ``NEWSWIRE_TOPIC_RETENTION_DAYS`` (not the
    broker's default, 7 days, which a long outage outlasts)."""
    config = {
        "cleanup.policy": "delete",
        "retention.ms": retention_ms(settings.topic_retention_days),
    }
    return [
        TopicSpec(settings.topic_raw, settings.topic_partitions, config),
        TopicSpec(settings.topic_enriched, settings.topic_partitions, config),
    ]


def copies_spec(settings: Settings) -> TopicSpec:
    """Exact copies (another URL, the same text), kept as long as the article topics."""
    (raw, _) = article_specs(settings)
    return TopicSpec(settings.topic_copies, settings.topic_partitions, dict(raw.config))


def retention_warning(settings: Settings) -> str | None:
    """A warning when the article topics' retention is shorter than the longest outage
    planned for: a worker down longer would find its position deleted."""
    if settings.topic_retention_days >= settings.longest_outage_days:
        return None
    return (
        f"NEWSWIRE_TOPIC_RETENTION_DAYS={settings.topic_retention_days:g} is shorter than "
        f"NEWSWIRE_LONGEST_OUTAGE_DAYS={settings.longest_outage_days:g}: a worker down that "
        "long finds its records deleted (it stops the partition rather than skip them; see "
        "the README's recovery)"
    )


def inflight_spec(settings: Settings) -> TopicSpec:
    """The worker's notes of records in flight (``pipeline/worker/crashes.py``): compacted,
    one record per stage and partition, so one partition is plenty."""
    return TopicSpec(settings.topic_inflight, 1, {"cleanup.policy": "compact"})


async def ensure_topics(settings: Settings) -> list[str]:
    """Create the raw, enriched, copies, DLQ and in-flight topics if missing; returns the
    ones created."""
    specs = [
        *article_specs(settings),
        copies_spec(settings),
        dlq_spec(settings),
        inflight_spec(settings),
    ]
    return await create_missing_topics(settings, specs)


def topic_overrides(resource: Mapping[str, Any]) -> dict[str, str]:
    """The settings a topic has of its own (not broker defaults), from one resource of a
    DescribeConfigs response (``Response.to_object()``, protocol v0 or v1+)."""
    overrides: dict[str, str] = {}
    for entry in resource.get("config_entries") or []:
        if "config_source" in entry:
            own = entry["config_source"] == _DYNAMIC_TOPIC_CONFIG
        else:
            own = not entry.get("is_default", True)
        if own and not entry.get("read_only") and entry.get("config_value") is not None:
            overrides[str(entry["config_names"])] = str(entry["config_value"])
    return overrides


def config_changes(current: Mapping[str, str], wanted: Mapping[str, str]) -> dict[str, str]:
    """The settings of ``wanted`` that ``current`` does not already have."""
    return {name: value for name, value in wanted.items() if current.get(name) != value}


async def enforce_topic_configs(
    settings: Settings, specs: Iterable[TopicSpec], servers: str | None = None
) -> dict[str, dict[str, str]]:
    """Give existing topics the configuration of their spec (e.g. a changed DLQ
    retention); returns what was changed, by topic. The other settings a topic has of its
    own are kept (AlterConfigs replaces a topic's whole set, so they are sent along)."""
    servers = servers or bootstrap(settings)
    admin = AIOKafkaAdminClient(**client_options(settings, servers))
    await start_client(admin, servers)
    changed: dict[str, dict[str, str]] = {}
    try:
        for spec in specs:
            if not spec.config:
                continue
            resource = ConfigResource(ConfigResourceType.TOPIC, spec.name)
            responses = await admin.describe_configs([resource])
            described = [
                r
                for response in responses
                for r in response.to_object()["resources"]
                if r["resource_name"] == spec.name
            ]
            if described and described[0]["error_code"] == _UNKNOWN_TOPIC:
                continue  # created with its configuration when it is created
            if not described or described[0]["error_code"]:
                reason = described[0]["error_message"] if described else "no answer"
                raise ConfigError(f"cannot read the configuration of topic {spec.name}: {reason}")
            current = topic_overrides(described[0])
            changes = config_changes(current, spec.config)
            if not changes:
                continue
            merged = {**current, **spec.config}
            answers = await admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, spec.name, configs=merged)]
            )
            for answer in answers:
                for r in answer.to_object()["resources"]:
                    if r["error_code"]:
                        raise ConfigError(
                            f"cannot configure topic {spec.name} ({changes}): "
                            f"{r['error_message'] or r['error_code']}"
                        )
            log.info("kafka.topic_configured", topic=spec.name, changed=changes)
            changed[spec.name] = changes
        return changed
    finally:
        await admin.close()


def replication_problem(settings: Settings, brokers: int) -> tuple[str, str]:
    """("", "") when ``NEWSWIRE_TOPIC_REPLICATION`` suits a cluster of ``brokers``.

    Producers use ``acks=all``; with one replica that guards nothing. On a cluster of two
    or more brokers one replica is an error (``setup`` refuses it unless forced); on one
    broker named by NEWSWIRE_KAFKA_BOOTSTRAP a warning (the local stack is one broker by
    design: nothing); more replicas than brokers is an error (Kafka would refuse the topics).
    """
    wanted = settings.topic_replication
    if wanted > brokers > 0:
        return "error", (
            f"NEWSWIRE_TOPIC_REPLICATION={wanted} but the cluster has {brokers} broker(s): "
            "topics cannot be created"
        )
    if wanted < 2 and brokers >= 2:
        return "error", (
            f"NEWSWIRE_TOPIC_REPLICATION={wanted} on a cluster of {brokers} brokers: producers "
            "wait for acks=all, but with one replica a single broker loss loses acknowledged "
            "records; set it to 3 (with min.insync.replicas 2), or pass --force"
        )
    if wanted < 2 and settings.kafka_bootstrap:
        return "warning", (
            f"NEWSWIRE_TOPIC_REPLICATION={wanted}: producers wait for acks=all, but with one "
            "replica a single broker loss loses acknowledged records; set it to 3 on a "
            "production cluster"
        )
    return "", ""


async def broker_count(settings: Settings) -> int:
    """How many brokers the cluster has (its metadata)."""
    servers = bootstrap(settings)
    admin = AIOKafkaAdminClient(**client_options(settings, servers))
    await start_client(admin, servers)
    try:
        return len((await admin.describe_cluster()).get("brokers") or [])
    finally:
        await admin.close()


def feeds_partitions_problem(topic: str, existing: int | None, wanted: int) -> tuple[str, str]:
    """("", "") when the feeds topic fits NEWSWIRE_POLLER_PARTITIONS (or does not exist yet);
    ("error", why) otherwise. Fewer partitions: the feeds of the missing ones would never be
    polled. More: the feed -> partition map (:func:`~pipeline.sources.state.partition_for`)
    depends on the count, and ``setup --poller-partitions`` moved the feeds' state to the
    new count's partitions, so a poller with the old count would read the wrong state."""
    if existing is None or existing == wanted:
        return "", ""
    if existing < wanted:
        return "error", (
            f"topic {topic} has {existing} partitions but NEWSWIRE_POLLER_PARTITIONS={wanted}: "
            f"the feeds of partitions {existing}..{wanted - 1} would never be polled; set "
            f"NEWSWIRE_POLLER_PARTITIONS={existing}, or raise the topics' partitions with "
            f"`newswire setup --poller-partitions {wanted}`"
        )
    return "error", (
        f"topic {topic} has {existing} partitions but NEWSWIRE_POLLER_PARTITIONS={wanted}: "
        f"feeds are mapped to partitions by their count; set "
        f"NEWSWIRE_POLLER_PARTITIONS={existing} (partitions cannot be removed)"
    )


async def partition_counts(settings: Settings, topics: Iterable[str]) -> dict[str, int]:
    """The partition count of each of ``topics`` that exists."""
    servers = bootstrap(settings)
    admin = AIOKafkaAdminClient(**client_options(settings, servers))
    await start_client(admin, servers)
    try:
        wanted = list(topics)
        existing = set(await admin.list_topics())
        found = [t for t in wanted if t in existing]
        if not found:
            return {}
        described = await admin.describe_topics(found)
        return {
            str(d.get("topic", d.get("name"))): len(d["partitions"])
            for d in described
            if not d["error_code"]
        }
    finally:
        await admin.close()


async def check_feeds_topic(settings: Settings) -> None:
    """Raise ConfigError when the feeds topic does not have NEWSWIRE_POLLER_PARTITIONS
    partitions (setup and every poller's start check it)."""
    counts = await partition_counts(settings, [settings.topic_feeds])
    level, why = feeds_partitions_problem(
        settings.topic_feeds, counts.get(settings.topic_feeds), settings.poller_partitions
    )
    if level == "error":
        raise ConfigError(why)


async def topic_partitions(consumer: Any, topic: str) -> set[int]:
    """The partition numbers of ``topic`` (fresh metadata; empty if it does not exist).

    ``consumer.topics()`` fetches metadata without updating the consumer's own view, so
    ``partitions_for_topic`` stays empty for topics never subscribed to."""
    cluster = await consumer._client.fetch_all_metadata()
    return set(cluster.partitions_for_topic(topic) or ())


async def wait_partitions(consumer: Any, topic: str) -> list[TopicPartition]:
    """The partitions of a topic, waiting briefly for a just-created one to appear."""
    for _ in range(50):
        found = await topic_partitions(consumer, topic)
        if found:
            return [TopicPartition(topic, p) for p in sorted(found)]
        await asyncio.sleep(0.2)
    raise ConfigError(f"topic {topic} has no partitions (is it created?)")


__all__ = [
    "COMPACTED",
    "TopicSpec",
    "article_specs",
    "broker_count",
    "check_feeds_topic",
    "config_changes",
    "create_missing_topics",
    "dlq_spec",
    "enforce_topic_configs",
    "ensure_topics",
    "feeds_partitions_problem",
    "inflight_spec",
    "min_insync_replicas",
    "partition_counts",
    "replica_config",
    "replication_problem",
    "retention_ms",
    "retention_warning",
    "topic_overrides",
    "topic_partitions",
    "wait_partitions",
]
