"""Topic retention as a setting, the setup warning, and gaps past retention (pure)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from aiokafka import TopicPartition

from pipeline.kafka.retention import Gap, find_gaps
from pipeline.kafka.topics import article_specs, retention_warning
from pipeline.settings import Settings


def test_article_topics_get_the_retention_setting() -> None:
    specs = article_specs(Settings(topic_retention_days=30))
    assert [s.name for s in specs] == ["newswire.articles.raw", "newswire.articles.enriched"]
    assert all(s.config["retention.ms"] == str(30 * 86_400_000) for s in specs)


def test_setup_warns_when_retention_is_shorter_than_the_longest_outage() -> None:
    assert retention_warning(Settings()) is None  # the defaults are safe: 14 days >= 7
    warning = retention_warning(Settings(topic_retention_days=2, longest_outage_days=7))
    assert warning is not None and "NEWSWIRE_TOPIC_RETENTION_DAYS=2" in warning


def test_gaps_are_committed_offsets_before_the_first_kept() -> None:
    a, b, c = (TopicPartition("raw", n) for n in range(3))
    gaps = find_gaps({a: 5, b: 40, c: None}, {a: 15, b: 15, c: 15})
    assert gaps == [Gap("raw", 0, 5, 15)]
    assert gaps[0].lost == 10 and gaps[0].as_json()["lost"] == 10


class FakeConsumer:
    """Faust's consumer as the guard uses it: pause and resume by topic-partition."""

    def __init__(self) -> None:
        self.paused: set[TopicPartition] = set()
        self.resumed: set[TopicPartition] = set()

    def pause_partitions(self, tps: list[TopicPartition]) -> None:
        self.paused |= set(tps)

    def resume_partitions(self, tps: set[TopicPartition]) -> None:
        self.resumed |= set(tps)


async def test_the_guard_keeps_a_gap_paused_through_faust_resuming_everything() -> None:
    from pipeline.worker.retention_guard import RetentionGuard

    a, b = TopicPartition("raw", 0), TopicPartition("raw", 1)

    async def find(settings: Settings, group: str, tps: Iterable[TopicPartition]) -> list[Gap]:
        return [Gap("raw", 0, 5, 15)] if a in tps else []

    guard = RetentionGuard(Settings(), find)
    consumer = FakeConsumer()
    await guard.on_assigned(consumer, [a, b])
    assert consumer.paused == {a} and guard.is_stopped(a) and not guard.is_stopped(b)
    consumer.resume_partitions({a, b})  # what Faust does after every rebalance
    assert consumer.resumed == {b}
    assert guard.health()["status"] == "degraded"
    await guard.on_assigned(consumer, [b])  # partition 0 moved to another worker
    assert guard.health() == {"status": "ok", "partitions_stopped": []}


async def test_a_resume_during_the_check_waits_for_its_answer() -> None:
    from pipeline.worker.retention_guard import RetentionGuard

    a, b = TopicPartition("raw", 0), TopicPartition("raw", 1)
    consumer = FakeConsumer()

    async def find(settings: Settings, group: str, tps: Iterable[TopicPartition]) -> list[Gap]:
        consumer.resume_partitions({a, b})  # Faust's recovery, before the answer came
        assert consumer.resumed == set()
        return [Gap("raw", 0, 5, 15)]

    guard = RetentionGuard(Settings(), find)
    await guard.on_assigned(consumer, [a, b])
    assert consumer.resumed == {b} and consumer.paused == {a}
    assert not guard.checking and guard.withheld == set()


async def test_a_failed_check_resumes_what_it_held_back() -> None:
    from pipeline.worker.retention_guard import RetentionGuard

    a = TopicPartition("raw", 0)
    consumer = FakeConsumer()

    async def find(settings: Settings, group: str, tps: Iterable[TopicPartition]) -> list[Gap]:
        consumer.resume_partitions({a})
        raise ConnectionError("broker away")

    guard = RetentionGuard(Settings(), find)
    with pytest.raises(ConnectionError):
        await guard.on_assigned(consumer, [a])
    assert consumer.resumed == {a} and not guard.is_stopped(a)
