"""Adding partitions to Kafka topics (``newswire setup --partitions``): the plan (Kafka can
add partitions, never remove them), the admin call, and the consumer-group check that keeps
a change from happening under running members. What each topic's new count changes, and
what moves along, is in :mod:`pipeline.provision` and :mod:`pipeline.sources.repartition`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions
from aiokafka.errors import CoordinatorNotAvailableError, NotCoordinatorError

from pipeline.errors import ConfigError
from pipeline.kafka.client import bootstrap, start_client
from pipeline.kafka.security import client_options
from pipeline.kafka.topics import partition_counts
from pipeline.settings import Settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PartitionChange:
    """One topic's partition count before and after."""

    topic: str
    before: int
    after: int


def growth_plan(current: Mapping[str, int], wanted: Mapping[str, int]) -> list[PartitionChange]:
    """The topics of ``wanted`` that need more partitions (missing topics are skipped: they
    are created with the wanted count). Fewer than a topic has is a ConfigError."""
    plan: list[PartitionChange] = []
    for topic, count in wanted.items():
        if count < 1:
            raise ConfigError(f"a topic needs at least one partition, not {count}")
        have = current.get(topic)
        if have is None or have == count:
            continue
        if count < have:
            raise ConfigError(
                f"topic {topic} has {have} partitions; Kafka cannot remove partitions, so "
                f"{count} is impossible (keep {have} or more)"
            )
        plan.append(PartitionChange(topic, have, count))
    return plan


async def group_members(settings: Settings, group: str, attempts: int = 20) -> int:
    """How many members the consumer group ``group`` has now (0 when it is unknown).

    A group no broker lists has no members (and asking for its coordinator on a cluster
    that never had a group fails: the offsets topic does not exist yet)."""
    servers = bootstrap(settings)
    admin = AIOKafkaAdminClient(**client_options(settings, servers))
    await start_client(admin, servers)
    try:
        listed = {str(entry[0]) for entry in await admin.list_consumer_groups()}
        if group not in listed:
            return 0
        for attempt in range(attempts):
            try:
                responses = await admin.describe_consumer_groups([group])
                break
            except (CoordinatorNotAvailableError, NotCoordinatorError):
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(0.5)
        total = 0
        for response in responses:
            for described in response.to_object()["groups"]:
                total += len(described.get("members") or [])
        return total
    finally:
        await admin.close()


async def grow_topics(settings: Settings, wanted: Mapping[str, int]) -> list[PartitionChange]:
    """Raise the partitions of existing topics to ``wanted``; returns what changed."""
    current = await partition_counts(settings, wanted)
    plan = growth_plan(current, wanted)
    if not plan:
        return []
    servers = bootstrap(settings)
    admin = AIOKafkaAdminClient(**client_options(settings, servers))
    await start_client(admin, servers)
    try:
        response = await admin.create_partitions(
            {change.topic: NewPartitions(total_count=change.after) for change in plan}
        )
        for result in response.to_object()["topic_errors"]:
            if result["error_code"]:
                raise ConfigError(
                    f"cannot add partitions to {result['topic']}: "
                    f"{result.get('error_message') or result['error_code']}"
                )
    finally:
        await admin.close()
    for change in plan:
        log.info(
            "kafka.partitions_added", topic=change.topic, before=change.before, after=change.after
        )
    return plan


__all__ = ["PartitionChange", "group_members", "grow_topics", "growth_plan"]
