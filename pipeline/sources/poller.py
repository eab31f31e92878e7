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
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor
from typing import Any
from urllib.parse import urlsplit

import structlog

from pipeline import metrics
from pipeline.errors import BadInputError, FetchError
from pipeline.kafka.client import encode
from pipeline.models import RawArticle
from pipeline.settings import Settings
from pipeline.sources.coordination import AtomicKafkaStateStore
from pipeline.sources.feeds import FeedConfig, FeedList
from pipeline.sources.fulltext import with_fulltext
from pipeline.sources.health import after_failure, per_day
from pipeline.sources.http import Fetcher, FetchResult, failure_reason
from pipeline.sources.membership import GroupMembership
from pipeline.sources.outcome import (
    PollSummary,
    PublishCallable,
    _atomic_store_publishes,
    body_hash,
    due_in_cycle,
    is_kafka_outage,
    summarize,
)
from pipeline.sources.parse import ParsedFeed
from pipeline.sources.pool import ParsePool, parse_job
from pipeline.sources.schedule import conditional_headers, next_interval, parse_max_age
from pipeline.sources.scheduler import Scheduler, Start, first_due
from pipeline.sources.seen import select
from pipeline.sources.state import FeedState, MemoryStateStore, StateStore, removed_feeds

log = structlog.get_logger(__name__)
#: After a failed publish or state write the feed is tried again this soon (seconds).
KAFKA_RETRY_SECONDS = 30.0
#: Polls in flight (fetching, parsing, committing) per fetch place.
POLLS_PER_FETCH = 4
#: How often the loop refreshes the O(feeds) gauges.
GAUGE_SECONDS = 10.0


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
        self.held_partitions: set[int] | None = None  # a group member's partitions
        self._in_flight: dict[str, asyncio.Task[FeedState]] = {}
        self.scheduler = Scheduler(settings.poll_per_host, settings.poll_host_gap)
        self._wakeup = asyncio.Event()
        self._gauges_at = 0.0
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

    def _mine(self, key: str) -> bool:
        feed = self.feeds.get(key)
        return feed is not None and feed.enabled and (self.assigned is None or key in self.assigned)

    def _my_feeds(self) -> list[FeedConfig]:
        return [f for k, f in self.feeds.items() if self._mine(k)]

    def _update_gauges(self) -> None:
        """O(feeds): called at most every few seconds by the loop, never per poll."""
        mine = self._my_feeds()
        metrics.FEEDS_ASSIGNED.set(len(mine))
        states = [s for f in mine if (s := self.states.get(f.key)) is not None]
        metrics.FEEDS_IN_BACKOFF.set(sum(1 for s in states if s.consecutive_failures))
        metrics.FEEDS_DISABLED.set(sum(1 for s in states if s.disabled))

    # -- scheduling -------------------------------------------------------------------

    def _host_of(self, feed: FeedConfig, state: FeedState | None) -> str:
        """The host a poll of ``feed`` goes to (after a permanent redirect: the new one)."""
        if state is not None and state.fetch_url and state.fetch_url != feed.url:
            return (urlsplit(state.fetch_url).hostname or "").lower()
        return feed.host

    def schedule_feed(self, feed: FeedConfig, now: float) -> None:
        """Put ``feed`` in the scheduler at its next due time; a feed never polled is
        placed at a fraction of its interval fixed by its key (no thundering herd)."""
        state = self.states.get(feed.key)
        if state is None or not state.next_poll_at:
            window = min(
                feed.interval or self.settings.poll_interval, self.settings.poll_first_spread
            )
            due = first_due(feed.key, now, window)
        else:
            due = state.next_poll_at
        self.scheduler.schedule(feed.key, self._host_of(feed, state), due)

    def reschedule_all(self) -> None:
        """After a load, an assignment or a feed list change (O(feeds), never per tick):
        schedule the feeds that are ours, unschedule the others."""
        for _ in self._reschedule(self.clock()):
            pass

    async def reschedule_all_async(self) -> None:
        """:meth:`reschedule_all` in slices, yielding to the event loop between them."""
        for _ in self._reschedule(self.clock()):
            await asyncio.sleep(0)

    def _reschedule(self, now: float) -> Iterator[None]:
        for done, (key, feed) in enumerate(list(self.feeds.items()), 1):
            if key not in self._in_flight:  # in flight: rescheduled when its poll ends
                if self._mine(key):
                    self.schedule_feed(feed, now)
                elif key in self.scheduler:
                    self.scheduler.remove(key)
            if done % 5000 == 0:
                yield
        self._wakeup.set()

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
        new_count = 0
        snapshot = state.snapshot()
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
                chosen = select(
                    parsed.articles, state.seen, state.floor, self.settings.poll_seen_items
                )
                published = chosen.publish
                if published and feed.fulltext:
                    published = await with_fulltext(
                        self.fetcher, self.pool, feed.url, published,
                        self.settings.max_body_chars,
                    )  # fmt: skip
                state.seen, state.floor = chosen.seen, chosen.floor
                state.revisions += chosen.revisions
                metrics.FEED_REVISIONS.inc(chosen.revisions)
                new_count = chosen.new
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
        # Jitter only ever shortens the interval: a feed is polled at least once per
        # interval, and polls of feeds that fell due together drift apart.
        state.next_poll_at = now + state.interval * self.rng.uniform(0.9, 1.0)
        state.items_per_day = per_day(
            state.items_per_day,
            new_count,
            now - state.last_poll_at if state.last_poll_at is not None else None,
        )
        state.last_poll_at = now
        state.last_status = result.status
        state.last_outcome = outcome
        state.last_error = None
        state.consecutive_failures = 0
        state.failing_since = None
        if state.disabled:
            log.info("poller.feed_enabled_again", feed=feed.url, was=state.disabled)
        state.disabled = None
        state.new_items = new_count
        state.total_items += new_count
        if changed:
            state.last_change_at = now
        if published or state.needs_write():
            await self._commit(feed, state, published, snapshot)
        else:
            metrics.POLLER_STATE_WRITES_SKIPPED.inc()
        metrics.FEED_FETCHES.labels(outcome=outcome).inc()
        metrics.FEED_NEW_ITEMS.inc(new_count)
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
        status = exc.status if isinstance(exc, FetchError) else None
        retry_after = exc.retry_after if isinstance(exc, FetchError) else None
        state.consecutive_failures += 1
        if state.failing_since is None:
            state.failing_since = now
        verdict = after_failure(
            state, status=status, message=message, now=now, settings=self.settings,
            rng=self.rng, retry_after=retry_after,
        )  # fmt: skip
        delay = verdict.delay
        if retry_after is not None:
            # The whole host asked for the pause, not only this feed.
            self.scheduler.hold_host(self._host_of(feed, state), now + retry_after)
        if verdict.disabled and not state.disabled:
            log.warning("poller.feed_disabled", feed=feed.url, reason=verdict.disabled)
        state.disabled = verdict.disabled
        state.next_poll_at = now + delay
        state.last_poll_at = now
        state.last_status = status
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
        self, feed: FeedConfig, state: FeedState, articles: list[RawArticle], snap: tuple[Any, ...]
    ) -> None:
        """Publish ``articles`` and save ``state``: in one Kafka transaction with an
        atomic store, else publish (waiting for the acks) then save. On failure the
        state goes back to ``snap`` (its snapshot) and the error propagates."""
        try:
            if self._atomic is not None:
                await self._atomic.commit(state, ((a.id, encode(a)) for a in articles))
            else:
                if articles:
                    await self._publish(articles)  # waits for Kafka's acks
                await self._save(feed, state)
            state.mark_written()
        except BaseException:
            state.restore(snap)
            raise

    async def _save(self, feed: FeedConfig, state: FeedState) -> None:
        try:
            await self.store.save(state)
            state.mark_written()
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
        todo, skipped = due_in_cycle(self._my_feeds(), self.states, now, respect_backoff)
        results = await asyncio.gather(*(self.poll_feed(f) for f in todo))
        self._update_gauges()
        return summarize(results, skipped)

    def _start(self, start: Start) -> None:
        key = start.key
        now = self.clock()
        feed = self.feeds.get(key)
        if feed is None or not self._mine(key) or key in self._in_flight:
            self.scheduler.finished(start.host, now)  # unassigned or removed meanwhile
            return
        metrics.SCHEDULE_LAG.observe(max(0.0, now - start.due))
        task = asyncio.create_task(self.poll_feed(feed), name=f"poll:{feed.url}")
        self._in_flight[key] = task

        def done(_task: asyncio.Task[FeedState]) -> None:
            self._in_flight.pop(key, None)
            end = self.clock()
            self.scheduler.finished(start.host, end)
            current = self.feeds.get(key)
            if current is not None and self._mine(key):
                self.schedule_feed(current, end)
            self._wakeup.set()

        task.add_done_callback(done)

    async def _drain(self, keys: Iterable[str] | None = None) -> None:
        wanted = set(self._in_flight) if keys is None else set(keys) & set(self._in_flight)
        tasks = [self._in_flight[k] for k in wanted]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def tick(self, now: float) -> int:
        """Start what the scheduler says may start now, within the global limit."""
        # Fetches are limited to poll_concurrency; polls parsing or waiting for their
        # Kafka commit do not hold a fetch place (up to 4 x as many polls in all).
        limit = self.settings.poll_concurrency
        budget = min(limit - self.fetcher.active, POLLS_PER_FETCH * limit - len(self._in_flight))
        started = 0
        if budget > 0:
            for start in self.scheduler.ready(now, budget):
                self._start(start)
                started += 1
        if now - self._gauges_at >= GAUGE_SECONDS:
            self._gauges_at = now
            self._update_gauges()
        return started

    async def run_forever(self, stop_event: asyncio.Event, *, coordinate: bool = False) -> None:
        """Poll feeds when due until ``stop_event`` is set.

        With ``coordinate`` the poller joins the Kafka consumer group and polls only the
        feeds of its assigned partitions (see the module docstring); otherwise all feeds.
        """
        group: GroupMembership | None = None
        if coordinate:
            group = GroupMembership(self)
            await group.start()
        elif not self._loaded:
            await self.load_state()
        if group is None:
            self.reschedule_all()

        async def stopper() -> None:
            await stop_event.wait()
            self._wakeup.set()

        watcher = asyncio.create_task(stopper())
        try:
            while not stop_event.is_set():
                if group is not None:
                    await group.poll()
                now = self.clock()
                if group is None or group.ready:
                    self.tick(now)
                upcoming = self.scheduler.next_wake(now)
                wait = 1.0 if upcoming is None else min(1.0, max(0.01, upcoming - now))
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=wait)
        finally:
            watcher.cancel()
            await self._drain()
            if group is not None:
                await group.stop()


__all__ = ["PollSummary", "Poller", "PublishCallable", "body_hash", "is_kafka_outage"]
