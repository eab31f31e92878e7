"""Fetching over HTTP for the poller: conditional GETs with every guard on.

Redirects are followed hop by hop and each hop is checked (:mod:`pipeline.sources.safety`:
http(s) only, no private targets, also after DNS); global and per-host concurrency limits;
connect and read timeouts; a size cap before and after decompression
(:mod:`pipeline.sources.decompress`); ``Retry-After`` on 429/503 carried by the error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
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


class Fetcher:
    """HTTP GET with redirects checked hop by hop, per-host and global limits, size caps."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._global = asyncio.Semaphore(max(1, settings.poll_concurrency))
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _session_get(self) -> aiohttp.ClientSession:
        if self._session is None:
            # The semaphores of ``fetch`` are the concurrency limits (waiting for them
            # does not count against the request timeout), so the pool has none.
            connector = aiohttp.TCPConnector(
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

    def _host_limit(self, url: str) -> asyncio.Semaphore:
        host = (urlsplit(url).hostname or "").lower()
        sem = self._hosts.get(host)
        if sem is None:
            sem = self._hosts[host] = asyncio.Semaphore(max(1, self.settings.poll_per_host))
        return sem

    async def fetch(self, url: str, headers: Mapping[str, str]) -> FetchResult:
        """GET ``url``; raises :class:`FetchError` (with status / retry_after) on failure."""
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
    "SafeResolver",
    "failure_reason",
]
