"""The poller as a process (``newswire poll``): feed list, signals, health, state store.

The long-running poller takes its feeds from the ``newswire.feeds`` topic when it holds
any (:mod:`pipeline.sources.feedtopic`; then the file is not read) and follows the topic's
changes while it runs; otherwise from the feed list file. With ``--once`` (always the
file) an empty or unreadable feed list is an error (exit 2). The long-running
poller without feeds instead warns and stays up idle, reading the list again until feeds appear or
SIGTERM / SIGINT stops it (exit 0), so a deployment can always start it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path
from typing import Any

import structlog
from aiokafka.errors import KafkaError

from pipeline import metrics
from pipeline.errors import ConfigError, KafkaUnavailableError
from pipeline.kafka.client import bootstrap
from pipeline.settings import Settings
from pipeline.sources.coordination import AtomicKafkaStateStore, ensure_poller_topics
from pipeline.sources.feeds import FeedList, load_feeds_logged
from pipeline.sources.feedtopic import FeedTopic, apply_to_poller
from pipeline.sources.poller import Poller

log = structlog.get_logger(__name__)

#: How often an idle poller (no enabled feed) reads its feed list again.
FEEDS_RECHECK_SECONDS = 60.0


def _try_load(feeds_file: Path) -> tuple[FeedList | None, str]:
    """The feed list and, when it has no enabled feed, why (for the idle warning)."""
    try:
        feeds = load_feeds_logged(feeds_file)
    except ConfigError as exc:
        return None, str(exc)
    if not feeds.enabled:
        return None, "no enabled feed in the list"
    return feeds, ""


async def wait_for_feeds(
    feeds_file: Path, stop: asyncio.Event, recheck: float = FEEDS_RECHECK_SECONDS
) -> FeedList | None:
    """Read the feed list every ``recheck`` seconds until it has an enabled feed (then
    return it) or ``stop`` is set (then None). Logs one warning, not one per check."""
    warned = ""
    while not stop.is_set():
        feeds, problem = _try_load(feeds_file)
        if feeds is not None:
            if warned:
                log.info("poller.feeds_found", file=str(feeds_file), feeds=len(feeds.enabled))
            return feeds
        if problem != warned:
            log.warning(
                "poller.idle", file=str(feeds_file), reason=problem,
                recheck_s=recheck, hint="add feeds (newswire feeds import FILE.opml)",
            )  # fmt: skip
            warned = problem
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=recheck)
    return None


async def poll_command(
    settings: Settings,
    feeds_file: Path | None = None,
    once: bool = False,
    *,
    recheck: float = FEEDS_RECHECK_SECONDS,
) -> int:
    """``newswire poll [--once] [--feeds FILE]``. Returns the process exit code (see the
    module docstring); an idle poller reads its list again every ``recheck`` seconds."""
    path = feeds_file or settings.feeds_file
    if once:
        feeds = load_feeds_logged(path)
        if not feeds.enabled:
            log.error("poller.no_feeds", file=str(path), reason="no enabled feed in the list")
            return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    poller: Poller | None = None
    started = time.time()

    def health() -> tuple[bool, dict[str, Any]]:
        if poller is None:
            return True, {"feeds_assigned": 0, "idle": True, "idle_s": time.time() - started}
        return poller.health()

    runner = None
    store: AtomicKafkaStateStore | None = None
    try:
        if settings.poller_metrics_port and not once:
            runner = await metrics.start_http_server(
                health, settings.poller_metrics_host, settings.poller_metrics_port
            )
        servers = bootstrap(settings)
        topic: FeedTopic | None = None
        listed = FeedList()
        if not once:
            try:
                await ensure_poller_topics(servers, settings)
                topic = FeedTopic(servers, settings)
                listed = await topic.load()
            except (KafkaUnavailableError, KafkaError) as exc:
                # Kafka is needed to poll, but the process stays up (idle on the file).
                log.warning("poller.feeds_topic_unreadable", error=str(exc)[:300])
                topic = None
            for error in listed.errors:
                log.error("feeds.invalid_entry", topic=settings.topic_feeds, error=str(error))
            if listed.enabled:
                log.info("poller.feeds_from_topic", feeds=len(listed.feeds))
                feeds = listed
            else:
                found = await wait_for_feeds(path, stop, recheck)
                if found is None:
                    return 0
                feeds = found
        await ensure_poller_topics(servers, settings)
        prefix = None if once else f"{settings.poller_group}-txn"
        store = AtomicKafkaStateStore(servers, settings, settings.topic_raw, prefix=prefix)
        poller = Poller(settings, feeds, None, store)
        if once:
            summary = await poller.run_once()
            log.info(
                "poller.cycle_done", polled=summary.polled, new_items=summary.new_items,
                not_modified=summary.not_modified, unchanged=summary.unchanged,
                failed=summary.failed, skipped=summary.skipped,
            )  # fmt: skip
            return 1 if feeds.errors else 0
        follower = None
        if topic is not None:
            # Feed list changes (``newswire feeds add / remove / import``) while running.
            running = poller
            follower = asyncio.create_task(
                topic.follow(
                    lambda up, gone: apply_to_poller(running, up, gone),
                    stop,
                    settings.feeds_follow_seconds,
                )
            )
        try:
            await poller.run_forever(stop, coordinate=True)
        finally:
            if follower is not None:
                follower.cancel()
                with contextlib.suppress(BaseException):
                    await follower
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        if runner is not None:
            await runner.cleanup()
        if poller is not None:
            await poller.close()
        if store is not None:
            await store.close()


__all__ = ["FEEDS_RECHECK_SECONDS", "poll_command", "wait_for_feeds"]
