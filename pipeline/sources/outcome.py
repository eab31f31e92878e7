"""Small pieces of a poll's outcome shared by the poller and its callers."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka.errors import KafkaError

from pipeline.errors import KafkaUnavailableError
from pipeline.models import RawArticle
from pipeline.sources.feeds import FeedConfig
from pipeline.sources.state import FeedState

#: Publishes raw articles and returns once Kafka acknowledged them.
PublishCallable = Callable[[list[RawArticle]], Awaitable[Any]]


def is_kafka_outage(exc: BaseException) -> bool:
    """Whether a poll failed on Kafka (publishing or saving state), not on the feed."""
    return isinstance(exc, KafkaError | KafkaUnavailableError)


def body_hash(body: bytes) -> str:
    """8 bytes (16 hex digits) identifying a response body: enough to skip a reparse."""
    return hashlib.blake2b(body, digest_size=8).hexdigest()


@dataclass(slots=True)
class PollSummary:
    """What one ``run_once`` cycle did."""

    polled: int = 0
    new_items: int = 0
    not_modified: int = 0
    unchanged: int = 0
    failed: int = 0
    skipped: int = 0


async def _atomic_store_publishes(articles: list[RawArticle]) -> Any:
    raise RuntimeError("the atomic state store publishes the articles")


def due_in_cycle(
    feeds: Iterable[FeedConfig], states: Mapping[str, FeedState], now: float, respect_backoff: bool
) -> tuple[list[FeedConfig], int]:
    """The feeds a one-off cycle polls, and how many it skips: those in failure backoff
    or under a Retry-After, unless ``respect_backoff`` is False."""
    todo: list[FeedConfig] = []
    skipped = 0
    for feed in feeds:
        state = states.get(feed.key)
        if respect_backoff and state and state.consecutive_failures and state.next_poll_at > now:
            skipped += 1
            continue
        todo.append(feed)
    return todo, skipped


def summarize(results: Iterable[FeedState], skipped: int) -> PollSummary:
    summary = PollSummary(skipped=skipped)
    for state in results:
        summary.polled += 1
        summary.new_items += state.new_items
        if state.last_outcome == "not_modified":
            summary.not_modified += 1
        elif state.last_outcome == "unchanged":
            summary.unchanged += 1
        elif state.last_outcome == "error":
            summary.failed += 1
    return summary


__all__ = [
    "PollSummary",
    "PublishCallable",
    "body_hash",
    "due_in_cycle",
    "is_kafka_outage",
    "summarize",
]
