"""The feed poller: conditional GET, adaptive schedule, politeness, backoff, Kafka state.

Layout: pure functions first (headers, schedule, backoff, decompression limits), then the
HTTP fetcher, then :class:`Poller`, then the command bodies ``cli.py`` calls.

Several pollers split the feeds through Kafka consumer-group assignment of the
``newswire.feeds`` topic: feed ``k`` belongs to partition ``partition_for(k)``; a poller
polls the feeds of the partitions it is assigned, finishes its in-flight polls before it
gives a partition up (so no feed is polled by two pollers at once), and loads the state of
newly assigned partitions from the compacted state topic before polling them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import multiprocessing
import os
import random
import signal
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
import structlog
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver

from pipeline import metrics
from pipeline.errors import BadInputError, ConfigError, FetchError
from pipeline.models import RawArticle
from pipeline.settings import Settings
from pipeline.sources.feeds import FeedConfig, FeedList, load_feeds
from pipeline.sources.parse import ParsedFeed, parse_feed_safely, plain_text
from pipeline.sources.safety import UnsafeURLError, check_addresses, check_url
from pipeline.sources.state import (
    AtomicKafkaStateStore,
    FeedState,
    KafkaStateStore,
    MemoryStateStore,
    PollerConfig,
    StateStore,
    ensure_poller_topics,
    partition_for,
)

# The per-feed ``fulltext`` flag needs trafilatura (imported where used: it is slow to load).
HAVE_TRAFILATURA = importlib.util.find_spec("trafilatura") is not None

try:  # optional: brotli ("br") is only advertised when the package is installed
    import brotli  # type: ignore[import-untyped]

    HAVE_BROTLI = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_BROTLI = False

log = structlog.get_logger(__name__)

PublishCallable = Callable[[list[RawArticle]], Awaitable[Any]]
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/rdf+xml;q=0.9,"
    " application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"
)
HTML_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
MAX_RETRY_AFTER = 7 * 86400.0
_RNG = random.Random()

# --------------------------------------------------------------------------------------
# Pure logic
# --------------------------------------------------------------------------------------


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, when.timestamp() - now), MAX_RETRY_AFTER)


def parse_max_age(cache_control: str | None) -> float | None:
    """``max-age`` (or ``s-maxage``) seconds from a ``Cache-Control`` header."""
    if not cache_control:
        return None
    best: float | None = None
    for part in cache_control.split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() in ("max-age", "s-maxage"):
            try:
                seconds = float(value.strip().strip('"'))
            except ValueError:
                continue
            if seconds > 0:
                best = max(best or 0.0, seconds)
    return best


def conditional_headers(state: FeedState | None) -> dict[str, str]:
    """``If-None-Match`` / ``If-Modified-Since`` echoing the stored validators verbatim."""
    headers: dict[str, str] = {}
    if state is None:
        return headers
    if state.etag:
        headers["If-None-Match"] = state.etag
    if state.last_modified:
        headers["If-Modified-Since"] = state.last_modified
    return headers


def backoff_delay(
    failures: int, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Exponential backoff with "equal jitter": in [d/2, d] for d = base * 2**(n-1), capped.

    Delays never shrink from one failure to the next (the lower bound of failure n+1 is
    the upper bound of failure n), and they keep coming: a feed is never dropped.
    """
    if failures <= 0:
        return 0.0
    exponent = min(failures - 1, 62)
    ceiling = min(cap, base * (2.0**exponent))
    jitter = (rng or _RNG).uniform(0, ceiling / 2)
    return ceiling / 2 + jitter


def next_interval(
    current: float,
    *,
    changed: bool,
    config: PollerConfig,
    fixed: float | None = None,
    hints: Iterable[float | None] = (),
) -> float:
    """The next polling interval after a successful poll.

    A fixed per-feed interval wins; otherwise the interval halves when the feed changed
    and grows by half when it did not, within [min, max]. Hints (Cache-Control max-age,
    RSS ttl, sy:updatePeriod) are floors, themselves capped at the maximum.
    """
    if fixed is not None:
        interval = fixed
    else:
        interval = current * (0.5 if changed else 1.5)
        interval = min(config.poll_max_interval, max(config.poll_min_interval, interval))
    floors = [h for h in hints if h]
    if floors:
        interval = max(interval, min(max(floors), config.poll_max_interval))
    return interval


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


class ResponseTooLargeError(FetchError):
    """The body (possibly after decompression) exceeds the configured maximum."""


class BoundedDecoder:
    """Incremental Content-Encoding decoder that never produces more than ``limit`` bytes.

    Output is bounded per call (``max_length`` / ``output_buffer_limit``), so a
    decompression bomb is stopped after ``limit`` bytes, not after it filled memory.
    """

    def __init__(self, encoding: str | None, limit: int, url: str) -> None:
        self.encoding = (encoding or "identity").strip().lower()
        self.limit = limit
        self.url = url
        self.total = 0
        self._zlib: Any = None
        self._brotli: Any = None
        if self.encoding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        elif self.encoding == "deflate":
            self._zlib = None  # decided on the first bytes: zlib-wrapped or raw
        elif self.encoding == "br":
            if not HAVE_BROTLI:
                raise FetchError(url, "brotli-encoded response but brotli is not installed")
            self._brotli = brotli.Decompressor()
        elif self.encoding not in ("identity", ""):
            raise FetchError(url, f"unsupported Content-Encoding {self.encoding!r}")

    def _count(self, data: bytes) -> bytes:
        self.total += len(data)
        if self.total > self.limit:
            raise ResponseTooLargeError(
                self.url,
                f"response exceeds {self.limit} bytes"
                + (" after decompression" if self.encoding not in ("identity", "") else ""),
            )
        return data

    def feed(self, data: bytes) -> bytes:
        if self.encoding in ("identity", ""):
            return self._count(data)
        try:
            if self._brotli is not None:
                return self._feed_brotli(data)
            if self._zlib is None:  # deflate: RFC says zlib, many servers send raw
                raw = not (
                    len(data) >= 2
                    and (data[0] & 0x0F) == 8
                    and ((data[0] << 8) | data[1]) % 31 == 0
                )
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
            return self._feed_zlib(data)
        except (zlib.error, ValueError) as exc:
            raise FetchError(self.url, f"corrupt {self.encoding} body: {exc}") from exc
        except Exception as exc:
            if HAVE_BROTLI and isinstance(exc, brotli.error):
                raise FetchError(self.url, f"corrupt br body: {exc}") from exc
            raise

    def _feed_zlib(self, data: bytes) -> bytes:
        out: list[bytes] = []
        buf = data
        while buf and not self._zlib.eof:
            chunk = self._zlib.decompress(buf, self.limit - self.total + 1)
            out.append(self._count(chunk))
            buf = self._zlib.unconsumed_tail
        return b"".join(out)

    def _feed_brotli(self, data: bytes) -> bytes:
        step = 64 * 1024  # output per call stays near this, whatever the ratio
        out = [self._count(self._brotli.process(data, output_buffer_limit=step))]
        while not self._brotli.can_accept_more_data():
            out.append(self._count(self._brotli.process(b"", output_buffer_limit=step)))
        return b"".join(out)

    def finish(self) -> bytes:
        if (
            self._zlib is not None
            and self.encoding != "deflate"
            and not self._zlib.eof
            and self.total == 0
        ):
            raise FetchError(self.url, f"truncated {self.encoding} body")
        if self._zlib is not None:
            return self._count(self._zlib.flush())
        return b""


def failure_reason(exc: BaseException) -> str:
    """A short, stable reason class for metrics labels."""
    if isinstance(exc, UnsafeURLError):
        return "refused"
    if isinstance(exc, ResponseTooLargeError):
        return "too_large"
    if isinstance(exc, BadInputError):
        return "bad_feed"
    if isinstance(exc, FetchError):
        if exc.status == 429:
            return "rate_limited"
        if exc.status is not None:
            return f"http_{exc.status // 100}xx"
        return "fetch"
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientError | OSError):
        return "network"
    return "internal"


# --------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------


class SafeResolver(ThreadedResolver):
    """DNS resolution that refuses non-public addresses unless private feeds are allowed."""

    def __init__(self, allow_private: bool) -> None:
        super().__init__()
        self.allow_private = allow_private

    async def resolve(self, host: str, port: int = 0, family: Any = 0) -> list[ResolveResult]:
        results = await super().resolve(host, port, family)
        check_addresses(f"//{host}", [r["host"] for r in results], allow_private=self.allow_private)
        return results


@dataclass(slots=True)
class FetchResult:
    status: int
    final_url: str
    permanent_url: str | None
    headers: dict[str, str]
    body: bytes = b""

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class Fetcher:
    """HTTP GET with redirects checked hop by hop, per-host and global limits, size caps."""

    def __init__(self, config: PollerConfig) -> None:
        self.config = config
        self._global = asyncio.Semaphore(max(1, config.poll_concurrency))
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _session_get(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=max(1, self.config.poll_concurrency),
                limit_per_host=max(1, self.config.poll_per_host),
                resolver=SafeResolver(self.config.allow_private_feeds),
                ttl_dns_cache=300,
            )
            timeout = aiohttp.ClientTimeout(
                total=self.config.poll_timeout,
                sock_connect=self.config.poll_connect_timeout,
                sock_read=self.config.poll_timeout,
            )
            encodings = "gzip, deflate, br" if HAVE_BROTLI else "gzip, deflate"
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=timeout,
                auto_decompress=False,
                headers={
                    "User-Agent": self.config.user_agent,
                    "Accept": ACCEPT,
                    "Accept-Encoding": encodings,
                },
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _host_limit(self, url: str) -> asyncio.Semaphore:
        host = (urlsplit(url).hostname or "").lower()
        sem = self._hosts.get(host)
        if sem is None:
            sem = self._hosts[host] = asyncio.Semaphore(max(1, self.config.poll_per_host))
        return sem

    async def fetch(self, url: str, headers: Mapping[str, str]) -> FetchResult:
        """GET ``url``; raises :class:`FetchError` (with status / retry_after) on failure."""
        session = self._session_get()
        current = url
        permanent = True
        for _hop in range(self.config.poll_max_redirects + 1):
            check_url(current, allow_private=self.config.allow_private_feeds)
            async with self._global, self._host_limit(current):
                try:
                    async with session.get(
                        current, headers=dict(headers), allow_redirects=False
                    ) as response:
                        if response.status in (301, 302, 303, 307, 308):
                            location = response.headers.get("Location")
                            if not location:
                                raise FetchError(
                                    current, "redirect without Location", response.status
                                )
                            permanent = permanent and response.status in (301, 308)
                            current = urljoin(current, location)
                            continue
                        return await self._finish(url, current, permanent, response)
                except aiohttp.ClientConnectorError as exc:
                    cause = exc.__cause__ or exc.__context__
                    if isinstance(cause, UnsafeURLError):
                        raise UnsafeURLError(current, cause.reason) from exc
                    raise FetchError(current, f"connection failed: {exc.os_error or exc}") from exc
                except UnsafeURLError as exc:
                    raise UnsafeURLError(current, exc.reason) from exc
                except TimeoutError as exc:
                    raise FetchError(
                        current, f"timed out after {self.config.poll_timeout:g}s"
                    ) from exc
                except aiohttp.ClientError as exc:
                    raise FetchError(current, f"HTTP error: {type(exc).__name__}: {exc}") from exc
        raise FetchError(url, f"more than {self.config.poll_max_redirects} redirects")

    async def _finish(
        self, url: str, final_url: str, permanent: bool, response: aiohttp.ClientResponse
    ) -> FetchResult:
        headers = {k.lower(): v for k, v in response.headers.items()}
        moved = final_url if (permanent and final_url != url) else None
        if response.status == 304:
            return FetchResult(304, final_url, moved, headers)
        if response.status in (429, 503) or response.status >= 400:
            retry_after = parse_retry_after(headers.get("retry-after"), time.time())
            raise FetchError(
                final_url, f"HTTP {response.status} {response.reason or ''}".strip(),
                status=response.status, retry_after=retry_after,
            )  # fmt: skip
        if response.status != 200:
            raise FetchError(final_url, f"unexpected HTTP {response.status}", response.status)
        limit = self.config.poll_max_bytes
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise ResponseTooLargeError(
                final_url, f"response of {length} bytes exceeds {limit} bytes"
            )
        decoder = BoundedDecoder(headers.get("content-encoding"), limit, final_url)
        parts: list[bytes] = []
        async for chunk in response.content.iter_chunked(64 * 1024):
            parts.append(decoder.feed(chunk))
        parts.append(decoder.finish())
        return FetchResult(200, final_url, moved, headers, b"".join(parts))


# --------------------------------------------------------------------------------------
# Status table
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# The poller
# --------------------------------------------------------------------------------------


@dataclass(slots=True)
class PollSummary:
    polled: int = 0
    new_items: int = 0
    not_modified: int = 0
    unchanged: int = 0
    failed: int = 0
    skipped: int = 0


def encode_article(article: RawArticle) -> bytes:
    return article.model_dump_json().encode("utf-8")


def restore_state(state: FeedState, snapshot: bytes) -> None:
    """Put ``state`` back to what ``state.to_json()`` returned as ``snapshot``."""
    old = FeedState.from_json(snapshot)
    for name in FeedState.__dataclass_fields__:
        setattr(state, name, getattr(old, name))


async def _no_publish(articles: list[RawArticle]) -> Any:
    raise RuntimeError("the atomic state store publishes the articles")


def _make_publish(settings: Settings, target: Any, *, atomic: bool = False) -> PublishCallable:
    if target is None and atomic:
        return _no_publish
    if hasattr(target, "send") and hasattr(target, "start"):
        from pipeline.kafka import publish_raw

        async def publish(articles: list[RawArticle]) -> Any:
            return await publish_raw(target, settings.topic_raw, articles)

        return publish
    if callable(target):
        return target  # type: ignore[no-any-return]
    raise TypeError("publish target must be an AIOKafkaProducer or an async callable")


def _default_executor(workers: int) -> Executor:
    if "forkserver" in multiprocessing.get_all_start_methods():
        forkserver = multiprocessing.get_context("forkserver")
        forkserver.set_forkserver_preload(["pipeline.sources.parse"])
        return ProcessPoolExecutor(max_workers=workers, mp_context=forkserver)
    spawn = multiprocessing.get_context("spawn")  # pragma: no cover - no forkserver
    return ProcessPoolExecutor(max_workers=workers, mp_context=spawn)


class Poller:
    """Polls feeds, publishes new articles, keeps state; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        feeds: FeedList | Sequence[FeedConfig],
        publish: Any,
        state_store: StateStore | None = None,
        *,
        config: PollerConfig | None = None,
        executor: Executor | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.config = config or PollerConfig.from_settings(settings)
        all_feeds = feeds.feeds if isinstance(feeds, FeedList) else list(feeds)
        self.feeds: dict[str, FeedConfig] = {f.key: f for f in all_feeds}
        self.store: StateStore = state_store or MemoryStateStore(self.config.poller_partitions)
        self._atomic = self.store if isinstance(self.store, AtomicKafkaStateStore) else None
        self._publish = _make_publish(settings, publish, atomic=self._atomic is not None)
        self.states: dict[str, FeedState] = {}
        self.fetcher = Fetcher(self.config)
        self._executor = executor
        self._own_executor = executor is None
        self.rng = rng or random.Random()
        self.clock = clock
        self.assigned: set[str] | None = None  # None = every feed (no group)
        self._in_flight: dict[str, asyncio.Task[FeedState]] = {}
        self._loaded = False
        self.last_activity: float | None = None
        self.started_at = clock()
        self._warned_fulltext = False

    # -- lifecycle --------------------------------------------------------------------

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            workers = self.config.poll_parse_workers or os.cpu_count() or 2
            self._executor = _default_executor(workers)
        return self._executor

    async def close(self) -> None:
        await self.fetcher.close()
        if self._executor is not None and self._own_executor:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def load_state(self, partitions: Iterable[int] | None = None) -> None:
        loaded = await self.store.load(partitions)
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
        ok = idle < max(3 * self.config.poll_max_interval, 600)
        return ok, {"feeds_assigned": assigned, "in_flight": len(self._in_flight), "idle_s": idle}

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
            "max_bytes": self.config.poll_max_bytes,
            "max_body_chars": self.config.max_body_chars,
        }
        loop = asyncio.get_running_loop()
        parsed = await loop.run_in_executor(self.executor, _parse_job, result.body, kwargs)
        if isinstance(parsed, BadInputError):
            raise parsed
        return parsed

    async def _with_fulltext(
        self, feed: FeedConfig, articles: list[RawArticle]
    ) -> list[RawArticle]:
        """Articles with the main text of their page as body (feeds with ``fulltext``).

        Pages are fetched by the same :class:`Fetcher` as feeds (per-host and global
        limits, timeouts, size cap, private-address refusal, checked redirects) and the
        text is extracted with trafilatura in the parse pool. A page that cannot be
        fetched or yields no text leaves the article as the feed gave it."""
        if not HAVE_TRAFILATURA:
            if not self._warned_fulltext:
                log.warning("poller.fulltext_unavailable", reason="trafilatura is not installed")
                self._warned_fulltext = True
            return articles
        return list(await asyncio.gather(*(self._fulltext(feed, a) for a in articles)))

    async def _fulltext(self, feed: FeedConfig, article: RawArticle) -> RawArticle:
        if not article.url:
            return article
        try:
            page = await self.fetcher.fetch(article.url, {"Accept": HTML_ACCEPT})
            if page.not_modified or not page.body:
                return article
            loop = asyncio.get_running_loop()
            text = await loop.run_in_executor(
                self.executor, _extract_job, page.body, page.final_url
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reason = failure_reason(exc)
            metrics.FULLTEXT_FETCHES.labels(outcome=reason).inc()
            log.warning(
                "poller.fulltext_failed", feed=feed.url, url=article.url, reason=reason,
                error=(str(exc) if isinstance(exc, FetchError) else repr(exc))[:300],
            )  # fmt: skip
            return article
        if not text or len(text) <= len(article.body or ""):
            metrics.FULLTEXT_FETCHES.labels(outcome="no_text").inc()
            return article
        metrics.FULLTEXT_FETCHES.labels(outcome="ok").inc()
        return article.model_copy(update={"body": text[: self.config.max_body_chars]})

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
                    published = await self._with_fulltext(feed, published)
                if published:
                    state.remember(
                        (a.id for a in published),
                        max(self.config.poll_seen_ids, 3 * len(parsed.articles)),
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
            current, changed=changed, config=self.config, fixed=feed.interval, hints=hints
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
        reason = failure_reason(exc)
        message = str(exc) if isinstance(exc, FetchError | BadInputError) else repr(exc)
        state.consecutive_failures += 1
        delay = backoff_delay(
            state.consecutive_failures,
            self.config.poll_backoff_base,
            self.config.poll_backoff_cap,
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
                await self._atomic.commit(state, ((a.id, encode_article(a)) for a in articles))
                return
            if articles:
                await self._publish(articles)  # waits for Kafka's acks
            await self._save(feed, state)
        except BaseException:
            restore_state(state, snapshot)
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

    async def run_forever(self, stop_event: asyncio.Event, *, coordinate: bool = False) -> None:
        """Poll feeds when due until ``stop_event`` is set.

        With ``coordinate`` the poller joins the Kafka consumer group and polls only the
        feeds of its assigned partitions (see the module docstring); otherwise all feeds.
        """
        group: _GroupMembership | None = None
        if coordinate:
            group = _GroupMembership(self)
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


def _parse_job(content: bytes, kwargs: dict[str, Any]) -> ParsedFeed | BadInputError:
    return parse_feed_safely(content, **kwargs)


def _extract_job(page: bytes, url: str) -> str | None:
    """The main text of an article page (trafilatura), run in the parse pool."""
    return extract_main_text(page, url)


def extract_main_text(page: bytes, url: str | None = None) -> str | None:
    """Main text of an HTML page without navigation, comments or boilerplate."""
    if not HAVE_TRAFILATURA:
        return None
    import trafilatura

    text = trafilatura.extract(
        page,
        url=url,
        include_comments=False,
        include_tables=False,
        include_images=False,
        favor_precision=True,
        deduplicate=True,
    )
    return plain_text(text) if text else None


class _GroupMembership:
    """Consumer-group membership on the assignment topic and the rebalance hand-over."""

    def __init__(self, poller: Poller) -> None:
        self.poller = poller
        self.consumer: Any = None
        self.ready = False

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.abc import ConsumerRebalanceListener

        from pipeline.kafka import bootstrap

        poller = self.poller
        config = poller.config
        membership = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                membership.ready = False
                lost = {tp.partition for tp in revoked}
                keys = [
                    k for k in list(poller.assigned or ())
                    if partition_for(k, config.poller_partitions) in lost
                ]  # fmt: skip
                # Finish in-flight polls before another poller may take these feeds.
                await poller._drain(keys)
                poller.assigned = (poller.assigned or set()) - set(keys)
                log.info("poller.partitions_revoked", partitions=sorted(lost), feeds=len(keys))

            async def on_partitions_assigned(self, assigned: Any) -> None:
                parts = {tp.partition for tp in assigned}
                atomic = poller._atomic
                if atomic is not None:
                    # Fence the previous owners (aborting what a dead one left open)
                    # before reading the state they wrote.
                    await atomic.release(atomic.claimed - parts)
                    await atomic.claim(parts)
                await poller.load_state(parts)
                poller.assigned = {
                    k for k in poller.feeds if partition_for(k, config.poller_partitions) in parts
                }
                membership.ready = True
                log.info(
                    "poller.partitions_assigned",
                    partitions=sorted(parts),
                    feeds=len(poller.assigned),
                )

        servers = bootstrap(poller.settings)
        await ensure_poller_topics(servers, config)
        poller.assigned = set()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=servers,
            group_id=config.poller_group,
            enable_auto_commit=False,
            session_timeout_ms=config.poller_session_timeout_ms,
            heartbeat_interval_ms=max(500, config.poller_session_timeout_ms // 4),
            max_poll_interval_ms=300_000,
            rebalance_timeout_ms=max(60_000, int(config.poll_timeout * 2000)),
        )
        self.consumer.subscribe([config.topic_feeds], listener=Listener())
        await self.consumer.start()

    async def poll(self) -> None:
        # Records are not used: calling getmany keeps the membership alive and runs the
        # rebalance callbacks.
        await self.consumer.getmany(timeout_ms=10, max_records=1)

    async def stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()


# --------------------------------------------------------------------------------------
# Command bodies (cli.py wires them into typer)
# --------------------------------------------------------------------------------------


def _load_or_fail(feeds_file: Path) -> FeedList:
    feeds = load_feeds(feeds_file)
    for error in feeds.errors:
        log.error("feeds.invalid_entry", file=str(feeds_file), error=str(error))
    return feeds


#: How often an idle poller (no enabled feed) reads its feed list again.
FEEDS_RECHECK_SECONDS = 60.0


def _try_load(feeds_file: Path) -> tuple[FeedList | None, str]:
    """The feed list and, when it has no enabled feed, why (for the idle warning)."""
    try:
        feeds = _load_or_fail(feeds_file)
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
    """``newswire poll [--once] [--feeds FILE]``. Returns the process exit code.

    With ``--once`` an empty or unreadable feed list is an error (exit 2). The
    long-running poller instead warns and stays up idle, reading the list again every
    ``recheck`` seconds, until feeds appear or SIGTERM / SIGINT stops it (exit 0), so a
    deployment can always start it."""
    from pipeline.kafka import bootstrap

    config = PollerConfig.from_settings(settings)
    path = feeds_file or settings.feeds_file
    if once:
        feeds = _load_or_fail(path)
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
        if config.poller_metrics_port and not once:
            runner = await metrics.start_http_server(
                health, config.poller_metrics_host, config.poller_metrics_port
            )
        if not once:
            found = await wait_for_feeds(path, stop, recheck)
            if found is None:
                return 0
            feeds = found
        servers = bootstrap(settings)
        await ensure_poller_topics(servers, config)
        prefix = None if once else f"{config.poller_group}-txn"
        store = AtomicKafkaStateStore(servers, config, settings.topic_raw, prefix=prefix)
        poller = Poller(settings, feeds, None, store, config=config)
        if once:
            summary = await poller.run_once()
            log.info(
                "poller.cycle_done", polled=summary.polled, new_items=summary.new_items,
                not_modified=summary.not_modified, unchanged=summary.unchanged,
                failed=summary.failed, skipped=summary.skipped,
            )  # fmt: skip
            return 1 if feeds.errors else 0
        await poller.run_forever(stop, coordinate=True)
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


async def feeds_status_command(settings: Settings, feeds_file: Path | None = None) -> int:
    """``newswire feeds status``: last poll, HTTP status, new items, failures, next poll."""
    from rich.console import Console
    from rich.table import Table

    from pipeline.kafka import bootstrap

    config = PollerConfig.from_settings(settings)
    feeds = _load_or_fail(feeds_file or settings.feeds_file)
    store = KafkaStateStore(bootstrap(settings), config)
    try:
        states = await store.load()
    finally:
        await store.close()
    table = Table(title="feeds status")
    for column in ("feed", "last poll", "HTTP", "outcome", "new", "failures", "next poll", "error"):
        table.add_column(column)

    def fmt(when: datetime | None) -> str:
        return when.strftime("%Y-%m-%d %H:%M:%S") if when else "-"

    for row in feed_status_rows(feeds.feeds, states):
        table.add_row(
            row.name[:40], fmt(row.last_poll), str(row.http_status or "-"), row.outcome or "-",
            str(row.new_items), str(row.consecutive_failures), fmt(row.next_poll),
            (row.last_error or "")[:60],
        )  # fmt: skip
    Console().print(table)
    return 0


__all__ = [
    "BoundedDecoder",
    "FeedStatus",
    "FetchResult",
    "Fetcher",
    "PollSummary",
    "Poller",
    "PollerConfig",
    "ResponseTooLargeError",
    "backoff_delay",
    "body_hash",
    "conditional_headers",
    "extract_main_text",
    "failure_reason",
    "feed_status_rows",
    "feeds_status_command",
    "new_articles",
    "next_interval",
    "parse_max_age",
    "parse_retry_after",
    "poll_command",
    "wait_for_feeds",
]
