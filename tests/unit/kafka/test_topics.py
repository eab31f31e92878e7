"""`newswire setup`'s Kafka checks (pipeline/kafka/topics.py), the pure parts."""

from __future__ import annotations

from pipeline.kafka.topics import feeds_partitions_problem, replication_warning
from pipeline.settings import Settings


def test_replication_one_warns_only_for_a_configured_cluster() -> None:
    assert replication_warning(Settings()) is None  # the local stack: one broker by design
    warning = replication_warning(Settings(kafka_bootstrap="kafka:9092"))
    assert warning is not None and "acks=all" in warning
    assert "NEWSWIRE_TOPIC_REPLICATION=1" in warning
    assert replication_warning(Settings(kafka_bootstrap="kafka:9092", topic_replication=3)) is None


def test_feeds_partitions() -> None:
    assert feeds_partitions_problem("t", None, 16) == ("", "")
    assert feeds_partitions_problem("t", 16, 16) == ("", "")
    level, why = feeds_partitions_problem("t", 8, 16)
    assert level == "error" and "8..15 would never be polled" in why
    level, why = feeds_partitions_problem("t", 20, 16)
    assert level == "warning" and "16..19 get no feeds" in why
