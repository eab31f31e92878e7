"""What ``newswire feeds status`` shows: one row per feed from the stored poller state."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipeline.kafka.client import bootstrap
from pipeline.settings import Settings
from pipeline.sources.coordination import KafkaStateStore
from pipeline.sources.feeds import FeedConfig, load_feeds_logged
from pipeline.sources.state import FeedState


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """One row of ``newswire feeds status``."""

    name: str
    url: str
    last_poll: datetime | None
    http_status: int | None
    outcome: str | None
    new_items: int
    total_items: int
    consecutive_failures: int
    next_poll: datetime | None
    last_error: str | None


def _when(stamp: float | None) -> datetime | None:
    return datetime.fromtimestamp(stamp, UTC) if stamp else None


def feed_status_rows(
    feeds: Iterable[FeedConfig], states: Mapping[str, FeedState]
) -> list[FeedStatus]:
    rows = []
    for feed in feeds:
        state = states.get(feed.key)
        rows.append(
            FeedStatus(
                name=feed.label,
                url=(state.fetch_url if state and state.fetch_url else feed.url),
                last_poll=_when(state.last_poll_at) if state else None,
                http_status=state.last_status if state else None,
                outcome=state.last_outcome if state else ("disabled" if not feed.enabled else None),
                new_items=state.new_items if state else 0,
                total_items=state.total_items if state else 0,
                consecutive_failures=state.consecutive_failures if state else 0,
                next_poll=_when(state.next_poll_at) if state else None,
                last_error=state.last_error if state else None,
            )
        )
    return rows


async def read_feed_status(settings: Settings, feeds_file: Path | None = None) -> list[FeedStatus]:
    """The status rows of the feed list, from the state the pollers stored in Kafka."""
    feeds = load_feeds_logged(feeds_file or settings.feeds_file)
    store = KafkaStateStore(bootstrap(settings), settings)
    try:
        states = await store.load()
    finally:
        await store.close()
    return feed_status_rows(feeds.feeds, states)


__all__ = ["FeedStatus", "feed_status_rows", "read_feed_status"]
