"""The worker's output through a Kafka outage, and the log of the Kafka client meanwhile:
pure logic, no broker (the real broker restart is tests/integration/
test_worker_broker_restart.py)."""

from __future__ import annotations

import logging

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    LeaderNotAvailableError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    OutOfOrderSequenceNumber,
    UnsupportedVersionError,
)

from pipeline.errors import HandedBackError, KafkaAuthError, KafkaUnavailableError
from pipeline.kafka.client import kafka_retriable
from pipeline.logs import RepeatFilter
from pipeline.settings import Settings
from pipeline.worker import output as output_module
from pipeline.worker.batches import Worker


@pytest.mark.parametrize(
    "exc",
    [
        KafkaConnectionError("closed"),
        KafkaTimeoutError(),
        LeaderNotAvailableError(),
        NotLeaderForPartitionError(),
        OutOfOrderSequenceNumber(),
        KafkaUnavailableError("127.0.0.1:9092", "connection refused"),
    ],
)
def test_a_broker_away_is_retried(exc: BaseException) -> None:
    assert kafka_retriable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        KafkaAuthError("127.0.0.1:9092", "SaslAuthenticationFailed", "user"),
        MessageSizeTooLargeError(),
        UnsupportedVersionError(),
        ValueError("a bug"),
    ],
)
def test_faults_retrying_cannot_fix_are_not(exc: BaseException) -> None:
    assert not kafka_retriable(exc)


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output_module, "KAFKA_RETRY_FIRST", 0.001)
    monkeypatch.setattr(output_module, "KAFKA_RETRY_CAP", 0.001)


async def test_output_is_sent_again_until_kafka_takes_it(fast_backoff: None) -> None:
    worker = Worker(Settings(kafka_bootstrap="127.0.0.1:1"))
    calls = 0

    async def send() -> int:
        nonlocal calls
        calls += 1
        if calls < 4:
            raise (KafkaConnectionError if calls % 2 else LeaderNotAvailableError)()
        return 7

    assert await worker.output.until_kafka_takes("enrich", send) == 7
    assert calls == 4


async def test_an_error_retrying_cannot_fix_is_raised_at_once(fast_backoff: None) -> None:
    worker = Worker(Settings(kafka_bootstrap="127.0.0.1:1"))
    calls = 0

    async def send() -> int:
        nonlocal calls
        calls += 1
        raise MessageSizeTooLargeError()

    with pytest.raises(MessageSizeTooLargeError):
        await worker.output.until_kafka_takes("enrich", send)
    assert calls == 1


async def test_a_stop_while_kafka_is_away_hands_the_batch_back() -> None:
    worker = Worker(Settings(kafka_bootstrap="127.0.0.1:1"))
    calls = 0

    async def send() -> int:
        nonlocal calls
        calls += 1
        worker.request_stop()
        raise KafkaConnectionError("closed")

    with pytest.raises(HandedBackError, match="Kafka"):
        await worker.output.until_kafka_takes("sink", send)
    assert calls == 1


def _record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_repeated_kafka_client_lines_are_logged_once_per_window() -> None:
    now = [100.0]
    repeat = RepeatFilter(window=10.0, clock=lambda: now[0])
    unable = "Unable connect to node with id %s: %s"
    kept = [repeat.filter(_record("aiokafka.conn", unable, 1, "refused")) for _ in range(500)]
    assert kept == [True] + [False] * 499
    other = _record("aiokafka.consumer.fetcher", "Failed fetch messages from %s: %s", 1, "x")
    assert repeat.filter(other)  # another kind of line is not held back
    assert repeat.filter(_record("faust.app", unable, 1, "refused"))  # nor other loggers
    now[0] += 10.5
    after = _record("aiokafka.conn", unable, 1, "refused")
    assert repeat.filter(after)
    assert "(499 like it in the last 10 s)" in after.getMessage()
    assert after.getMessage().startswith("Unable connect to node with id 1: refused")


@pytest.mark.parametrize("buffer,partitions", [(4096, 4), (4096, 16), (200, 6), (10, 64)])
def test_one_poll_never_overflows_a_paused_agents_buffer(buffer: int, partitions: int) -> None:
    """Faust pauses a partition once the buffer reaches its high mark; at worst every
    partition of the topic then delivers one more poll's records, and they still fit."""
    import math

    from pipeline.worker.app import PRESSURE_HIGH_RATIO, fetch_limit

    limit = fetch_limit(buffer, partitions)
    high = math.floor(buffer / PRESSURE_HIGH_RATIO)
    assert limit >= 1
    if buffer - high >= partitions:
        assert (high - 1) + partitions * limit <= buffer - 1  # room left for the last put
