"""Newswire's Kafka clients against a real broker that requires TLS (client certificates
too) and SCRAM-SHA-256 on its SASL_SSL listener (the ``secure_kafka`` fixture)."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from aiokafka import AIOKafkaConsumer
from pydantic import SecretStr

from pipeline.errors import KafkaAuthError, KafkaUnavailableError, NewswireError
from pipeline.kafka.client import make_producer, send_all, start_client
from pipeline.kafka.security import client_options
from pipeline.kafka.topics import TopicSpec, create_missing_topics, wait_partitions

if TYPE_CHECKING:
    from tests.plugins.endpoints import SecureKafka

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def test_tls_scram_round_trip(secure_kafka: SecureKafka, isolated: Any) -> None:
    """Admin creates a topic, the producer sends, a consumer reads it back: all over TLS
    with a client certificate (encrypted key) and SCRAM-SHA-256."""
    settings = isolated(secure_kafka.settings, "secure")
    topic = settings.topic_raw
    created = await create_missing_topics(settings, [TopicSpec(topic, 2)])
    assert created == [topic]

    producer = make_producer(settings)
    await start_client(producer, settings.kafka_bootstrap or "")
    try:
        sent = await send_all(producer, topic, [(b"k1", b"hello over tls"), (b"k2", b"again")])
    finally:
        await producer.stop()
    assert sent == 2

    consumer = AIOKafkaConsumer(
        **client_options(settings), group_id=None, auto_offset_reset="earliest"
    )
    await start_client(consumer, settings.kafka_bootstrap or "")
    try:
        partitions = await wait_partitions(consumer, topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        values: list[bytes] = []
        for _ in range(20):
            batch = await consumer.getmany(timeout_ms=500)
            values += [m.value for ms in batch.values() for m in ms if m.value is not None]
            if len(values) >= 2:
                break
    finally:
        await consumer.stop()
    assert sorted(values) == [b"again", b"hello over tls"]


async def test_wrong_password_is_a_clear_error(
    secure_kafka: SecureKafka, caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong SCRAM password fails at once with KafkaAuthError naming the user, not the
    password, and the client logs no traceback."""
    assert secure_kafka.settings.kafka_sasl_password is not None
    right = secure_kafka.settings.kafka_sasl_password.get_secret_value()
    wrong = "not-" + right
    settings = secure_kafka.settings.model_copy(update={"kafka_sasl_password": SecretStr(wrong)})
    caplog.set_level(logging.DEBUG)
    for client in (
        make_producer(settings),
        AIOKafkaConsumer(**client_options(settings), group_id=None),
    ):
        with pytest.raises(KafkaAuthError) as failure:
            await start_client(client, settings.kafka_bootstrap or "")
        message = str(failure.value)
        assert isinstance(failure.value, NewswireError)
        assert "newswire-test" in message and "SCRAM-SHA-256" in message
        assert wrong not in message and right not in message
    with pytest.raises(KafkaAuthError):
        await create_missing_topics(settings, [TopicSpec(f"never-{uuid.uuid4().hex}", 1)])
    for record in caplog.records:
        assert record.exc_info is None, record.getMessage()
        assert wrong not in record.getMessage()


async def test_plaintext_client_cannot_reach_the_secure_listener(
    secure_kafka: SecureKafka,
) -> None:
    """Settings without security against the SASL_SSL port fail with a NewswireError too
    (no hang): the default PLAINTEXT path is unchanged, and it is not a silent downgrade."""
    settings = secure_kafka.settings.model_copy(
        update={
            "kafka_security_protocol": "PLAINTEXT",
            "kafka_ssl_cafile": None,
            "kafka_ssl_certfile": None,
            "kafka_ssl_keyfile": None,
            "kafka_ssl_key_password": None,
            "kafka_sasl_username": None,
            "kafka_sasl_password": None,
        }
    )
    producer = make_producer(settings, request_timeout_ms=5000)
    with pytest.raises((KafkaUnavailableError, KafkaAuthError)):
        await start_client(producer, settings.kafka_bootstrap or "")


async def test_setup_checks_the_feeds_topic_partitions(
    secure_kafka: SecureKafka, isolated: Any
) -> None:
    """`newswire setup`'s (and the poller's) check of an existing feeds topic (over the
    secure connection): fewer or more partitions than NEWSWIRE_POLLER_PARTITIONS is an error
    (the feed -> partition map depends on the count), equal or missing passes."""
    from pipeline.errors import ConfigError
    from pipeline.kafka.topics import check_feeds_topic, partition_counts

    settings = isolated(secure_kafka.settings, "feeds", poller_partitions=4)
    await check_feeds_topic(settings)  # not created yet: passes
    await create_missing_topics(settings, [TopicSpec(settings.topic_feeds, 2)])
    assert await partition_counts(settings, [settings.topic_feeds]) == {settings.topic_feeds: 2}
    with pytest.raises(ConfigError, match="NEWSWIRE_POLLER_PARTITIONS=4"):
        await check_feeds_topic(settings)
    fewer = settings.model_copy(update={"poller_partitions": 1})
    with pytest.raises(ConfigError, match="NEWSWIRE_POLLER_PARTITIONS=2"):
        await check_feeds_topic(fewer)
    await check_feeds_topic(settings.model_copy(update={"poller_partitions": 2}))  # passes
