"""The feed poller's loop: poll each feed when due, publish what is new, keep state.

One poll of a feed: conditional GET (:mod:`~pipeline.sources.http`), parse in the process
pool (:mod:`~pipeline.sources.pool`), optional full text (:mod:`~pipeline.sources.fulltext`),
publish the new articles and save the feed's state together (:meth:`Poller._commit`), then
schedule the next poll (:mod:`~pipeline.sources.schedule`); a failure becomes backoff,
never a crash. With ``coordinate`` the poller polls only the feeds of the partitions its
consumer group assigned it (:mod:`~pipeline.sources.coordination`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka.errors import KafkaError

from pipeline import metrics
from pipeline.backoff import backoff_delay
from pipeline.errors import BadInputError, FetchError, KafkaUnavailableError
from pipeline.kafka.client import encode
from pipeline.models import RawArticle
from pipeline.settings import Settings
from pipeline.sources.coordination import AtomicKafkaStateStore, GroupMembership
from pipeline.sources.feeds import FeedConfig, FeedList
from pipeline.sources.fulltext import with_fulltext
from pipeline.sources.http import Fetcher, FetchResult, failure_reason
from pipeline.sources.parse import ParsedFeed
from pipeline.sources.pool import ParsePool, parse_job
from pipeline.sources.schedule import conditional_headers, next_interval, parse_max_age
from pipeline.sources.state import (
    FeedState,
    MemoryStateStore,
    StateStore,
    partition_for,
    removed_feeds,
)

log = structlog.get_logger(__name__)
#: After a failed publish or state write the feed is tried again this soon (seconds).
KAFKA_RETRY_SECONDS = 30.0


def is_kafka_outage(exc: BaseException) -> bool:
    """Whether a poll failed on Kafka (publishing or saving state), not on the feed."""
    return isinstance(exc, KafkaError | KafkaUnavailableError)


#: Publishes raw articles and returns once Kafka acknowledged them.
PublishCallable = Callable[[list[RawArticle]], Awaitable[Any]]


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def new_articles(articles: Sequence[RawArticle], seen: Iterable[str]) -> list[RawArticle]:
    """Articles whose id was not published before, first occurrence of each id only."""
    known = set(seen)
    out: list[RawArticle] = []
    for article in articles:
        if article.id not in known:
            known.add(article.id)
            out.append(article)
    return out


@dataclass(slots=True)
class PollSummary:
    polled: int = 0
    new_items: int = 0
    not_modified: int = 0
    unchanged: int = 0
    failed: int = 0
    skipped: int = 0


class Poller:
    """Polls feeds, publishes new articles, keeps state; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        feeds: FeedList | Sequence[FeedConfig],
        publish: PublishCallable | None,
        state_store: StateStore | None = None,
        *,
        executor: Executor | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        all_feeds = feeds.feeds if isinstance(feeds, FeedList) else list(feeds)
        self.feeds: dict[str, FeedConfig] = {f.key: f for f in all_feeds}
        # A list with invalid entries may only have a typo: their state is kept.
        self._forget_removed = not (isinstance(feeds, FeedList) and feeds.errors)
        self.store: StateStore = state_store or MemoryStateStore(self.settings.poller_partitions)
        self._atomic = self.store if isinstance(self.store, AtomicKafkaStateStore) else None
        if publish is None and self._atomic is None:
            raise TypeError("a publish callable is needed unless the state store is atomic")
        self._publish = publish or _atomic_store_publishes
        self.states: dict[str, FeedState] = {}
        self.fetcher = Fetcher(self.settings)
        self.pool = ParsePool(
            self.settings.poll_parse_workers,
            timeout=self.settings.poll_parse_timeout,
            executor=executor,
        )
        self.rng = rng or random.Random()
        self.clock = clock
        self.assigned: set[str] | None = None  # None = every feed (no group)
        self._in_flight: dict[str, asyncio.Task[FeedState]] = {}
        self._loaded = False
        self.last_activity: float | None = None
        self.started_at = clock()

    # -- lifecycle --------------------------------------------------------------------

    async def close(self) -> None:
        await self.fetcher.close()
        self.pool.close()

    async def load_state(self, partitions: Iterable[int] | None = None) -> None:
        loaded = await self.store.load(partitions)
        # Only a group member (the service: ``assigned`` is a set) forgets: the group's
        # pollers share one list, while a one-off run (``poll --once --feeds other.yaml``)
        # may poll a different list against the same state topic.
        forget = self._forget_removed and self.assigned is not None
        removed = removed_feeds(loaded, self.feeds) if forget else []
        if removed:
            # Feeds taken off the list: tombstone their state so the compacted topic
            # (and every later load) forgets them instead of keeping them forever.
            await self.store.forget(removed)
            for key in removed:
                loaded.pop(key, None)
                self.states.pop(key, None)
            log.info("poller.removed_feeds_forgotten", feeds=len(removed))
        self.states.update(loaded)
        self._loaded = True
        log.info("poller.state_loaded", feeds=len(loaded))

    def state_for(self, feed: FeedConfig) -> FeedState:
        state = self.states.get(feed.key)
        if state is None:
            state = self.states[feed.key] = FeedState(key=feed.key, url=feed.url)
        return state

    def health(self) -> tuple[bool, dict[str, Any]]:
        assigned = len(self._my_feeds())
        idle = self.clock() - (self.last_activity or self.started_at)
        pool = self.pool.health()
        ok = idle < max(3 * self.settings.poll_max_interval, 600) and pool["broken"] is None
        return ok, {
            "feeds_assigned": assigned,
            "in_flight": len(self._in_flight),
            "idle_s": idle,
            "parse_pool": pool,
        }

    def _my_feeds(self) -> list[FeedConfig]:
        return [
            f
            for k, f in self.feeds.items()
            if f.enabled and (self.assigned is None or k in self.assigned)
        ]

    def _update_gauges(self) -> None:
        mine = self._my_feeds()
        metrics.FEEDS_ASSIGNED.set(len(mine))
        metrics.FEEDS_IN_BACKOFF.set(
            sum(1 for f in mine if (s := self.states.get(f.key)) and s.consecutive_failures)
        )

    # -- one feed ---------------------------------------------------------------------

    async def _parse(self, feed: FeedConfig, result: FetchResult) -> ParsedFeed:
        kwargs = {
            "feed_url": feed.url,
            "source_name": feed.name,
            "tags": tuple(feed.tags),
            "response_headers": {
                k: v for k, v in result.headers.items() if k in ("content-type", "content-language")
            },
            "max_bytes": self.settings.poll_max_bytes,
            "max_body_chars": self.settings.max_body_chars,
        }
        parsed = await self.pool.run(feed.url, parse_job, result.body, kwargs)
        if isinstance(parsed, BadInputError):
            raise parsed
        return parsed

    async def poll_feed(self, feed: FeedConfig) -> FeedState:
        """Poll one feed now: fetch, parse, publish what is new, save state. Never raises
        for feed problems (they become backoff); cancellation propagates."""
        state = self.state_for(feed)
        now = self.clock()
        self.last_activity = now
        url = state.fetch_url or feed.url
        started = time.monotonic()
        try:
            result = await self.fetcher.fetch(url, conditional_headers(state))
            metrics.FETCH_SECONDS.observe(time.monotonic() - started)
            await self._success(feed, state, result, now)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every feed failure becomes backoff, never a crash
            await self._failure(feed, state, exc, now)
        finally:
            metrics.POLL_LAST_CYCLE.set(self.clock())
        return state

    async def _success(
        self, feed: FeedConfig, state: FeedState, result: FetchResult, now: float
    ) -> None:
        hints: list[float | None] = [parse_max_age(result.headers.get("cache-control"))]
        published: list[RawArticle] = []
        snapshot = state.to_json()
        if result.not_modified:
            outcome = "not_modified"
            metrics.FEED_NOT_MODIFIED.inc()
        else:
            metrics.FEED_BYTES.inc(len(result.body))
            digest = body_hash(result.body)
            if digest == state.body_hash:
                outcome = "unchanged"
            else:
                parsed = await self._parse(feed, result)
                hints.append(parsed.min_interval_hint)
                published = new_articles(parsed.articles, state.seen_ids)
                if published and feed.fulltext:
                    published = await with_fulltext(
                        self.fetcher, self.pool, feed.url, published,
                        self.settings.max_body_chars,
                    )  # fmt: skip
                if published:
                    state.remember(
                        (a.id for a in published),
                        max(self.settings.poll_seen_ids, 3 * len(parsed.articles)),
                    )
                state.body_hash = digest
                outcome = "new" if published else "unchanged"
            # The new validators, seen ids and body hash only count once the articles
            # are acknowledged (``_commit`` restores the old state if that fails): a
            # failed publish must not turn the next poll into a 304 that hides the items.
            state.etag = result.headers.get("etag") or None
            state.last_modified = result.headers.get("last-modified") or None
        if result.not_modified:
            state.etag = result.headers.get("etag") or state.etag
            state.last_modified = result.headers.get("last-modified") or state.last_modified
        if result.permanent_url and result.permanent_url != state.fetch_url:
            log.info("poller.feed_moved", feed=feed.url, to=result.permanent_url)
            state.fetch_url = result.permanent_url
        changed = bool(published)
        current = state.interval or feed.interval or self.settings.poll_interval
        state.interval = next_interval(
            current, changed=changed, config=self.settings, fixed=feed.interval, hints=hints
        )
        state.next_poll_at = now + state.interval * self.rng.uniform(0.9, 1.1)
        state.last_poll_at = now
        state.last_status = result.status
        state.last_outcome = outcome
        state.last_error = None
        state.consecutive_failures = 0
        state.new_items = len(published)
        state.total_items += len(published)
        if changed:
            state.last_change_at = now
        await self._commit(feed, state, published, snapshot)
        metrics.FEED_FETCHES.labels(outcome=outcome).inc()
        metrics.FEED_NEW_ITEMS.inc(len(published))
        log.debug("poller.polled", feed=feed.url, outcome=outcome, new=len(published))

    async def _failure(
        self, feed: FeedConfig, state: FeedState, exc: Exception, now: float
    ) -> None:
        if is_kafka_outage(exc):
            # Our broker, not the feed, failed: no backoff, no failure count. The feed is
            # polled again soon and its items published then (state was restored).
            state.next_poll_at = now + KAFKA_RETRY_SECONDS
            metrics.POLLER_KAFKA_ERRORS.inc()
            log.warning(
                "poller.kafka_unavailable",
                feed=feed.url,
                error=repr(exc)[:300],
                retry_in=KAFKA_RETRY_SECONDS,
            )
            return
        reason = failure_reason(exc)
        message = str(exc) if isinstance(exc, FetchError | BadInputError) else repr(exc)
        state.consecutive_failures += 1
        delay = backoff_delay(
            state.consecutive_failures,
            self.settings.poll_backoff_base,
            self.settings.poll_backoff_cap,
            self.rng,
        )
        retry_after = exc.retry_after if isinstance(exc, FetchError) else None
        if retry_after is not None:
            delay = max(delay, retry_after)
        state.next_poll_at = now + delay
        state.last_poll_at = now
        state.last_status = exc.status if isinstance(exc, FetchError) else None
        state.last_outcome = "error"
        state.last_error = message[:500]
        state.new_items = 0
        metrics.FEED_FETCHES.labels(outcome="error").inc()
        metrics.FEED_FAILURES.labels(reason=reason).inc()
        if isinstance(exc, BadInputError):
            metrics.FEED_PARSE_ERRORS.labels(reason="bad_feed").inc()
        log.warning(
            "poller.feed_failed",
            feed=feed.url,
            name=feed.name,
            reason=reason,
            error=message[:300],
            status=state.last_status,
            failures=state.consecutive_failures,
            retry_in=round(delay, 1),
        )
        with contextlib.suppress(Exception):
            await self._save(feed, state)

    async def _commit(
        self, feed: FeedConfig, state: FeedState, articles: list[RawArticle], snapshot: bytes
    ) -> None:
        """Publish ``articles`` and save ``state``: in one Kafka transaction with an
        atomic store, else publish (waiting for the acks) then save. On failure the
        state goes back to ``snapshot`` and the error propagates (the poll failed)."""
        try:
            if self._atomic is not None:
                await self._atomic.commit(state, ((a.id, encode(a)) for a in articles))
                return
            if articles:
                await self._publish(articles)  # waits for Kafka's acks
            await self._save(feed, state)
        except BaseException:
            state.restore(snapshot)
            raise

    async def _save(self, feed: FeedConfig, state: FeedState) -> None:
        try:
            await self.store.save(state)
        except Exception as exc:
            log.error("poller.state_save_failed", feed=feed.url, error=repr(exc))
            raise

    # -- cycles -----------------------------------------------------------------------

    async def run_once(self, *, respect_backoff: bool = True) -> PollSummary:
        """Poll every enabled (assigned) feed once, concurrently; feeds in failure backoff
        or under a Retry-After are skipped unless ``respect_backoff`` is False."""
        if not self._loaded:
            await self.load_state()
        now = self.clock()
        summary = PollSummary()
        todo = []
        for feed in self._my_feeds():
            state = self.states.get(feed.key)
            if (
                respect_backoff
                and state
                and state.consecutive_failures
                and state.next_poll_at > now
            ):
                summary.skipped += 1
                continue
            todo.append(feed)
        results = await asyncio.gather(*(self.poll_feed(f) for f in todo))
        for state in results:
            summary.polled += 1
            summary.new_items += state.new_items
            if state.last_outcome == "not_modified":
                summary.not_modified += 1
            elif state.last_outcome == "unchanged":
                summary.unchanged += 1
            elif state.last_outcome == "error":
                summary.failed += 1
        self._update_gauges()
        return summary

    def due_feeds(self, now: float) -> list[FeedConfig]:
        due = []
        for feed in self._my_feeds():
            if feed.key in self._in_flight:
                continue
            state = self.states.get(feed.key)
            if state is None or state.next_poll_at <= now:
                due.append(feed)
        return due

    def _start(self, feed: FeedConfig) -> None:
        task = asyncio.create_task(self.poll_feed(feed), name=f"poll:{feed.url}")
        self._in_flight[feed.key] = task
        key = feed.key

        def done(_task: asyncio.Task[FeedState]) -> None:
            self._in_flight.pop(key, None)

        task.add_done_callback(done)

    async def _drain(self, keys: Iterable[str] | None = None) -> None:
        wanted = set(self._in_flight) if keys is None else set(keys) & set(self._in_flight)
        tasks = [self._in_flight[k] for k in wanted]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- the group member's side of a rebalance (pipeline.sources.coordination.GroupMember) --

    def join_group(self) -> None:
        """Poll nothing until the consumer group assigns partitions."""
        self.assigned = set()

    async def release_partitions(self, partitions: set[int]) -> int:
        """Hand over the feeds of ``partitions``, their in-flight polls finished first (so
        no feed is polled by two pollers at once); returns how many feeds."""
        count = self.settings.poller_partitions
        keys = [k for k in list(self.assigned or ()) if partition_for(k, count) in partitions]
        await self._drain(keys)
        self.assigned = (self.assigned or set()) - set(keys)
        return len(keys)

    async def take_partitions(self, partitions: set[int]) -> int:
        """Take the feeds of ``partitions``: fence their previous owners (the atomic store
        aborts what a dead one left open), then load their state; returns how many feeds."""
        atomic = self._atomic
        if atomic is not None:
            await atomic.release(atomic.claimed - partitions)
            await atomic.claim(partitions)
        await self.load_state(partitions)
        count = self.settings.poller_partitions
        self.assigned = {k for k in self.feeds if partition_for(k, count) in partitions}
        return len(self.assigned)

    async def run_forever(self, stop_event: asyncio.Event, *, coordinate: bool = False) -> None:
        """Poll feeds when due until ``stop_event`` is set.

        With ``coordinate`` the poller joins the Kafka consumer group and polls only the
        feeds of its assigned partitions (see the module docstring); otherwise all feeds.
        """
        group: GroupMembership | None = None
        if coordinate:
            group = GroupMembership(self, self.settings)
            await group.start()
        elif not self._loaded:
            await self.load_state()
        try:
            while not stop_event.is_set():
                if group is not None:
                    await group.poll()
                now = self.clock()
                if group is None or group.ready:
                    for feed in self.due_feeds(now):
                        self._start(feed)
                self._update_gauges()
                wait = self._seconds_to_next(now)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop_event.wait(), timeout=wait)
        finally:
            await self._drain()
            if group is not None:
                await group.stop()

    def _seconds_to_next(self, now: float) -> float:
        upcoming = [
            s.next_poll_at
            for f in self._my_feeds()
            if f.key not in self._in_flight and (s := self.states.get(f.key)) is not None
        ]
        if not upcoming:
            return 0.5
        return min(1.0, max(0.05, min(upcoming) - now))


async def _atomic_store_publishes(articles: list[RawArticle]) -> Any:
    raise RuntimeError("the atomic state store publishes the articles")


__all__ = ["PollSummary", "Poller", "PublishCallable", "body_hash", "new_articles"]
