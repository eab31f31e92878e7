"""Fetching over HTTP for the poller: conditional GETs with every guard on.

Redirects are followed hop by hop and each hop is checked (:mod:`pipeline.sources.safety`:
http(s) only, no private targets, also after DNS); global and per-host concurrency limits;
connect and read timeouts; a size cap before and after decompression
(:mod:`pipeline.sources.decompress`); ``Retry-After`` on 429/503 carried by the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver

from pipeline.errors import BadInputError, FetchError
from pipeline.settings import Settings
from pipeline.sources.decompress import ACCEPT_ENCODING, BoundedDecoder, ResponseTooLargeError
from pipeline.sources.safety import UnsafeURLError, check_addresses, check_url
from pipeline.sources.schedule import parse_retry_after

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/rdf+xml;q=0.9,"
    " application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"
)
HTML_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"


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


@dataclass(slots=True)
class _HostSlot:
    semaphore: asyncio.Semaphore
    users: int = 0


class HostLimits:
    """Per-host concurrency limits that live only while used.

    A host's semaphore exists while a fetch holds or waits for it and is dropped when the
    last one leaves (an idle semaphore is at its full count: it holds no state), so the
    map never holds more hosts than fetches in flight, however many hosts the feeds and
    their redirects name over months."""

    def __init__(self, per_host: int) -> None:
        self.per_host = max(1, per_host)
        self._slots: dict[str, _HostSlot] = {}

    def __len__(self) -> int:
        return len(self._slots)

    @contextlib.asynccontextmanager
    async def hold(self, host: str) -> AsyncIterator[None]:
        """Wait for one of ``host``'s ``per_host`` places and hold it for the block."""
        slot = self._slots.get(host)
        if slot is None:
            slot = self._slots[host] = _HostSlot(asyncio.Semaphore(self.per_host))
        slot.users += 1
        try:
            async with slot.semaphore:
                yield
        finally:
            slot.users -= 1
            if slot.users == 0:
                del self._slots[host]


@dataclass(slots=True)
class HostsSeen:
    """Distinct hosts looked up since the DNS cache was last cleared. aiohttp forgets an
    expired DNS entry only when that host is looked up again, so the cache grows with
    every host ever fetched; :meth:`note` says when it has seen ``cap`` hosts and the
    cache should be cleared."""

    cap: int
    hosts: set[str] = field(default_factory=set)

    def note(self, host: str) -> bool:
        """Record ``host``; True (and start over) once more than ``cap`` were seen."""
        self.hosts.add(host)
        if len(self.hosts) > self.cap:
            self.hosts.clear()
            return True
        return False


class Fetcher:
    """HTTP GET with redirects checked hop by hop, per-host and global limits, size caps."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._global = asyncio.Semaphore(max(1, settings.poll_concurrency))
        self._hosts = HostLimits(settings.poll_per_host)
        self._hosts_seen = HostsSeen(max(1, settings.poll_max_hosts))
        self._connector: aiohttp.TCPConnector | None = None
        self._session: aiohttp.ClientSession | None = None
        self.active = 0  # fetches under way (the poller's scheduler budget)

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _session_get(self) -> aiohttp.ClientSession:
        if self._session is None:
            # The semaphores of ``fetch`` are the concurrency limits (waiting for them
            # does not count against the request timeout), so the pool has none.
            connector = self._connector = aiohttp.TCPConnector(
                limit=0,
                resolver=SafeResolver(self.settings.allow_private_feeds),
                ttl_dns_cache=300,
            )
            timeout = aiohttp.ClientTimeout(
                total=self.settings.poll_timeout,
                sock_connect=self.settings.poll_connect_timeout,
                sock_read=self.settings.poll_timeout,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=timeout,
                auto_decompress=False,
                headers={
                    "User-Agent": self.settings.user_agent,
                    "Accept": ACCEPT,
                    "Accept-Encoding": ACCEPT_ENCODING,
                },
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
            self._connector = None

    def _host_limit(self, url: str) -> contextlib.AbstractAsyncContextManager[None]:
        host = (urlsplit(url).hostname or "").lower()
        if self._hosts_seen.note(host) and self._connector is not None:
            self._connector.clear_dns_cache()
        return self._hosts.hold(host)

    async def fetch(self, url: str, headers: Mapping[str, str]) -> FetchResult:
        """GET ``url``; raises :class:`FetchError` (with status / retry_after) on failure."""
        self.active += 1
        try:
            return await self._fetch(url, headers)
        finally:
            self.active -= 1

    async def _fetch(self, url: str, headers: Mapping[str, str]) -> FetchResult:
        session = self._session_get()
        current = url
        permanent = True
        for _hop in range(self.settings.poll_max_redirects + 1):
            check_url(current, allow_private=self.settings.allow_private_feeds)
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
                        current, f"timed out after {self.settings.poll_timeout:g}s"
                    ) from exc
                except aiohttp.ClientError as exc:
                    raise FetchError(current, f"HTTP error: {type(exc).__name__}: {exc}") from exc
        raise FetchError(url, f"more than {self.settings.poll_max_redirects} redirects")

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
        limit = self.settings.poll_max_bytes
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


__all__ = [
    "ACCEPT",
    "HTML_ACCEPT",
    "FetchResult",
    "Fetcher",
    "HostLimits",
    "HostsSeen",
    "SafeResolver",
    "failure_reason",
]
