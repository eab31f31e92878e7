"""What ``newswire feeds status`` shows: one row per feed from the stored poller state,
a page at a time, filtered by health.

Pages go partition by partition (feeds ordered by partition, then key). The feeds topic
and the state topic are partitioned alike (``partition_for``), so a page reads, per
partition it visits, that partition of both topics and nothing else, and stops once the
page is full. A page visits at most ``scan`` partitions (:data:`SCAN_PARTITIONS`, 4 of the
16): a filter on a rare health can fill only part of its page (or none of it) before the
bound, and the cursor then says where to go on. So a page of any filter reads at most
4/16 of the state (about 13,000 records of a 200,000-feed list, ~9 MB), never all of it;
listing every match of a rare health takes ``partitions / scan`` pages. The cursor of the
next page is ``<partition>:<feed key>`` (``<partition>:`` to start a partition).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.kafka.client import bootstrap
from pipeline.settings import Settings
from pipeline.sources.coordination import KafkaStateStore
from pipeline.sources.feeds import FeedConfig, load_feeds_logged
from pipeline.sources.feedtopic import FeedTopic
from pipeline.sources.state import FeedState, StateStore, partition_for

#: Feed health, as ``feeds status --health`` filters it.
HEALTH = ("new", "ok", "backoff", "disabled", "off")


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
    health: str = "new"
    items_per_day: float = 0.0
    last_new_item: datetime | None = None
    disabled_reason: str | None = None
    key: str = ""


@dataclass(frozen=True, slots=True)
class StatusPage:
    rows: list[FeedStatus]
    next_cursor: str | None


def _when(stamp: float | None) -> datetime | None:
    return datetime.fromtimestamp(stamp, UTC) if stamp else None


def health_of(feed: FeedConfig, state: FeedState | None) -> str:
    """``off`` (disabled in the list), ``new`` (never polled), ``disabled`` (given up,
    probed slowly), ``backoff`` (failing) or ``ok``."""
    if not feed.enabled:
        return "off"
    if state is None or state.last_poll_at is None:
        return "new"
    if state.disabled:
        return "disabled"
    return "backoff" if state.consecutive_failures else "ok"


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
                health=health_of(feed, state),
                items_per_day=round(state.items_per_day, 2) if state else 0.0,
                last_new_item=_when(state.last_change_at) if state else None,
                disabled_reason=state.disabled if state else None,
                key=feed.key,
            )
        )
    return rows


#: Partitions one page visits at most (see the module docstring).
SCAN_PARTITIONS = 4

#: The feeds of one partition (of the feeds topic, or of a file's list).
FeedsOf = Callable[[int], Awaitable[list[FeedConfig]]]


def _grouped(feeds: Iterable[FeedConfig], partitions: int) -> FeedsOf:
    by_partition: dict[int, list[FeedConfig]] = {}
    for feed in feeds:
        by_partition.setdefault(partition_for(feed.key, partitions), []).append(feed)

    async def feeds_of(part: int) -> list[FeedConfig]:
        return by_partition.get(part, [])

    return feeds_of


async def _feeds_of(settings: Settings, feeds_file: Path | None) -> FeedsOf:
    """The feeds topic, a partition at a time, when it holds feeds and no file is named;
    else the file's list (read whole: a file has no partitions)."""
    if feeds_file is None:
        topic = FeedTopic(bootstrap(settings), settings)
        if await topic.holds_records():

            async def feeds_of(part: int) -> list[FeedConfig]:
                return (await FeedTopic(bootstrap(settings), settings).load([part])).feeds

            return feeds_of
    listed = load_feeds_logged(feeds_file or settings.feeds_file).feeds
    return _grouped(listed, settings.poller_partitions)


def _cursor(cursor: str | None) -> tuple[int, str]:
    if not cursor:
        return 0, ""
    part, _, key = cursor.partition(":")
    if not part.isdigit():
        raise ConfigError(f"bad cursor {cursor!r}: use the next_cursor of the previous page")
    return int(part), key


async def status_page(
    feeds: Iterable[FeedConfig] | FeedsOf,
    store: StateStore,
    partitions: int,
    *,
    health: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
    scan: int = SCAN_PARTITIONS,
) -> StatusPage:
    """One page of status rows (see the module docstring): at most ``limit`` rows, at
    most ``scan`` partitions visited."""
    if health is not None and health not in HEALTH:
        raise ConfigError(f"unknown health {health!r}: use one of {', '.join(HEALTH)}")
    feeds_of = feeds if callable(feeds) else _grouped(feeds, partitions)
    start, after = _cursor(cursor)
    rows: list[FeedStatus] = []
    visited = 0
    for part in range(start, partitions):
        if visited >= max(1, scan):
            return StatusPage(rows, f"{part}:")
        listed = await feeds_of(part)
        todo = sorted(
            (f for f in listed if part > start or f.key > after),
            key=lambda f: f.key,
        )
        if not todo:
            continue
        visited += 1
        states = await store.load([part])
        for row in feed_status_rows(todo, states):
            if health is None or row.health == health:
                rows.append(row)
                if len(rows) == limit:
                    return StatusPage(rows, f"{part}:{row.key}")
    return StatusPage(rows, None)


async def read_feed_status(settings: Settings, feeds_file: Path | None = None) -> list[FeedStatus]:
    """Every feed's status row (all pages, one partition's state in memory at a time)."""
    feeds = await _feeds_of(settings, feeds_file)
    store = KafkaStateStore(bootstrap(settings), settings)
    rows: list[FeedStatus] = []
    cursor: str | None = None
    try:
        while True:
            page = await status_page(
                feeds, store, settings.poller_partitions, cursor=cursor, limit=10_000,
                scan=settings.poller_partitions,
            )  # fmt: skip
            rows.extend(page.rows)
            if page.next_cursor is None:
                return rows
            cursor = page.next_cursor
    finally:
        await store.close()


async def read_feed_status_page(
    settings: Settings,
    feeds_file: Path | None = None,
    *,
    health: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> StatusPage:
    """A page of status rows of the feed list, from the state stored in Kafka."""
    feeds = await _feeds_of(settings, feeds_file)
    store = KafkaStateStore(bootstrap(settings), settings)
    try:
        return await status_page(
            feeds, store, settings.poller_partitions,
            health=health, cursor=cursor, limit=limit,
        )  # fmt: skip
    finally:
        await store.close()


__all__ = [
    "HEALTH",
    "SCAN_PARTITIONS",
    "FeedStatus",
    "StatusPage",
    "feed_status_rows",
    "health_of",
    "read_feed_status",
    "read_feed_status_page",
    "status_page",
]
