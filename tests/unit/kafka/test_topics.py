"""`newswire setup`'s Kafka checks (pipeline/kafka/topics.py), the pure parts."""

from __future__ import annotations

from pipeline.kafka.topics import (
    feeds_partitions_problem,
    min_insync_replicas,
    replica_config,
    replication_problem,
)
from pipeline.settings import Settings

CLUSTER = "kafka-0:9092,kafka-1:9092,kafka-2:9092"


def test_replication_one_warns_only_for_a_configured_single_broker() -> None:
    assert replication_problem(Settings(), 1) == ("", "")  # the local stack: one broker
    level, warning = replication_problem(Settings(kafka_bootstrap="kafka:9092"), 1)
    assert level == "warning" and "acks=all" in warning
    assert "NEWSWIRE_TOPIC_REPLICATION=1" in warning


def test_replication_one_on_a_multi_broker_cluster_is_refused() -> None:
    level, why = replication_problem(Settings(kafka_bootstrap=CLUSTER), 3)
    assert level == "error" and "--force" in why and "3 brokers" in why
    # the local cluster profile (no NEWSWIRE_KAFKA_BOOTSTRAP) is refused alike
    assert replication_problem(Settings(), 3)[0] == "error"
    assert replication_problem(Settings(kafka_bootstrap=CLUSTER, topic_replication=3), 3) == (
        "",
        "",
    )


def test_more_replicas_than_brokers_is_refused() -> None:
    level, why = replication_problem(Settings(kafka_bootstrap="k:9092", topic_replication=3), 1)
    assert level == "error" and "1 broker(s)" in why


def test_feeds_partitions() -> None:
    assert feeds_partitions_problem("t", None, 16) == ("", "")
    assert feeds_partitions_problem("t", 16, 16) == ("", "")
    level, why = feeds_partitions_problem("t", 8, 16)
    assert level == "error" and "8..15 would never be polled" in why
    level, why = feeds_partitions_problem("t", 20, 16)
    assert level == "error" and "NEWSWIRE_POLLER_PARTITIONS=20" in why


def test_min_insync_replicas_follow_the_replication() -> None:
    assert replica_config(Settings()) == {}  # one replica: the broker's default
    assert replica_config(Settings(topic_replication=3)) == {"min.insync.replicas": "2"}
    assert replica_config(Settings(topic_replication=2)) == {"min.insync.replicas": "1"}
    assert replica_config(Settings(topic_replication=5)) == {"min.insync.replicas": "2"}
    chosen = Settings(topic_replication=5, topic_min_insync_replicas=3)
    assert min_insync_replicas(chosen) == 3
    assert min_insync_replicas(Settings(topic_replication=2, topic_min_insync_replicas=4)) == 2
