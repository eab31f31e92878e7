"""Offsets out of retention on the real Kafka: a topic with a tiny retention whose first
records are deleted past a consumer group's committed offset is found as a gap."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.structs import OffsetAndMetadata

from pipeline.kafka.client import make_producer, start_client
from pipeline.kafka.retention import Gap, group_gaps
from pipeline.kafka.topics import TopicSpec, create_missing_topics

pytestmark = pytest.mark.integration


async def test_a_committed_offset_deleted_by_retention_is_a_gap(stack: Any, isolated: Any) -> None:
    settings = isolated(stack.settings, "retention", topic_partitions=2)
    topic, group = settings.topic_raw, f"{settings.worker_id}-group"
    await create_missing_topics(
        settings, [TopicSpec(topic, 2, {"retention.ms": "1000", "cleanup.policy": "delete"})]
    )
    producer = make_producer(settings)
    await start_client(producer, stack.kafka_bootstrap)
    try:
        for partition in (0, 1):
            for n in range(20):
                await producer.send_and_wait(topic, f"r{n}".encode(), partition=partition)
    finally:
        await producer.stop()
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    consumer.assign([tp0, tp1])
    try:
        await consumer.commit({tp0: OffsetAndMetadata(5, ""), tp1: OffsetAndMetadata(18, "")})
    finally:
        await consumer.stop()
    assert await group_gaps(settings, group, [tp0, tp1]) == []
    # Retention deletes the first 15 records of each partition (the broker's retention
    # check runs every 5 minutes; DeleteRecords moves the log start offset the same way).
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_records({tp0: RecordsToDelete(15), tp1: RecordsToDelete(15)})
    finally:
        await admin.close()
    gaps = await group_gaps(settings, group, [tp0, tp1])
    assert gaps == [Gap(topic, 0, 5, 15)] and gaps[0].lost == 10  # partition 1 is past it
    assert await group_gaps(settings, "a-new-group", [tp0]) == []  # never committed: no gap
