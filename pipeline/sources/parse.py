"""Feed bytes -> raw articles: RSS 0.9x/1.0/2.0, Atom 0.3/1.0 (feedparser) and JSON Feed.

Everything here is pure and synchronous (no I/O), so the poller can run it in a process
pool, off the event loop, and the seed replayer can call it directly. This module reads
the document (size, format, charset, what the feed says about itself) and hands the rest
to one module per concern: :mod:`~pipeline.sources.xml_safety` (refuses dangerous
entities before feedparser sees the bytes), :mod:`~pipeline.sources.jsonfeed`,
:mod:`~pipeline.sources.entries` (entry -> article), :mod:`~pipeline.sources.html_text`
and :mod:`~pipeline.sources.dates`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import feedparser

from pipeline.errors import BadInputError
from pipeline.models import RawArticle, Source, utcnow
from pipeline.sources.encoding import to_utf8
from pipeline.sources.entries import entries_to_articles, http_url, link_base
from pipeline.sources.html_text import content_text
from pipeline.sources.jsonfeed import read_json_feed
from pipeline.sources.xml_safety import check_xml_safety

#: Largest feed document parsed (the poller enforces its own, configurable, limit first).
MAX_FEED_BYTES = 10 * 1024 * 1024

_UPDATE_PERIODS = {
    "hourly": 3600,
    "daily": 86400,
    "weekly": 7 * 86400,
    "monthly": 30 * 86400,
    "yearly": 365 * 86400,
}


@dataclass(slots=True)
class ParsedFeed:
    """A parsed feed: its articles and what the feed says about itself."""

    articles: list[RawArticle]
    title: str | None = None
    link: str | None = None
    language: str | None = None
    version: str = ""
    bozo_reason: str | None = None
    encoding: str | None = None
    #: RSS ``<ttl>``, in seconds.
    ttl_seconds: float | None = None
    #: ``sy:updatePeriod`` / ``sy:updateFrequency``, in seconds between updates.
    update_period_seconds: float | None = None
    entry_count: int = 0
    skipped: list[str] = field(default_factory=list)

    @property
    def min_interval_hint(self) -> float | None:
        """The longest "do not poll more often than" the feed itself declares."""
        hints = [h for h in (self.ttl_seconds, self.update_period_seconds) if h]
        return max(hints) if hints else None


_XML_DECL_ENCODING = re.compile(rb"^\s*<\?xml[^>]*encoding\s*=\s*[\"'][^\"']+[\"']", re.I)


def _self_described(content: bytes) -> bool:
    """A BOM or an XML declaration naming the encoding: the document knows its charset."""
    if content.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return True
    return bool(_XML_DECL_ENCODING.match(content[:512]))


def _charset(headers: Mapping[str, str]) -> str | None:
    ctype = headers.get("content-type", "")
    match = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", ctype, re.I)
    return match.group(1) if match else None


def _lower_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    return {k.lower(): v for k, v in (headers or {}).items()}


def _source_for(
    feed_url: str, source_name: str | None, title: str | None, link: str | None
) -> Source:
    site = http_url(link) or feed_url
    host = (urlsplit(site).hostname or "").lower()
    if host.startswith("www."):
        host = host[4:]
    return Source(name=source_name or title or host or None, domain=host or None, feed_url=feed_url)


def _number(value: Any) -> float | None:
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _update_period(feed: Mapping[str, Any]) -> float | None:
    period = feed.get("sy_updateperiod")
    if not isinstance(period, str) or period.strip().lower() not in _UPDATE_PERIODS:
        return None
    seconds = float(_UPDATE_PERIODS[period.strip().lower()])
    # feedparser keeps the element's own name; DW really spells it "updateFequency".
    frequency = _number(feed.get("sy_updatefrequency") or feed.get("sy_updatefequency")) or 1.0
    return seconds / frequency


def parse_feed(
    content: bytes,
    *,
    feed_url: str,
    source_name: str | None = None,
    tags: Sequence[str] = (),
    response_headers: Mapping[str, str] | None = None,
    max_bytes: int = MAX_FEED_BYTES,
    max_body_chars: int | None = None,
    fetched_at: datetime | None = None,
) -> ParsedFeed:
    """Parse a feed document into raw articles, one per entry.

    ``feed_url`` resolves relative links and identifies entries without a link.
    Raises :class:`BadInputError` for content that is not a feed, is too large or
    declares unsafe XML entities.
    """
    if not content or not content.strip():
        raise BadInputError(feed_url, "empty document")
    if len(content) > max_bytes:
        raise BadInputError(feed_url, f"document of {len(content)} bytes exceeds {max_bytes}")
    fetched = fetched_at or utcnow()
    headers = _lower_headers(response_headers)
    decoded = to_utf8(content)  # UTF-16/32 -> UTF-8, so the rest reads it like UTF-8
    content = decoded.content
    stripped = content.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith((b"{", b"[")):
        return _parse_json_feed(
            content, feed_url=feed_url, source_name=source_name, tags=tags, fetched_at=fetched,
            max_body_chars=max_body_chars,
        )  # fmt: skip
    check_xml_safety(content, source=feed_url)

    # feedparser resolves relative links against Content-Location (and xml:base). Only an
    # HTTP(S) feed URL is a base; a file URI would turn every relative link into a file
    # path, so replayed files keep them relative and they resolve against the site link.
    fp_headers: dict[str, str] = {}
    if http_url(feed_url) is not None:
        fp_headers["content-location"] = feed_url
    if headers.get("content-language"):
        fp_headers["content-language"] = headers["content-language"]
    # feedparser applies RFC 3023 to the HTTP Content-Type ("text/xml" without charset
    # means US-ASCII, a missing header means Latin-1); neither is what publishers mean.
    # A BOM or XML declaration wins; else the HTTP charset; else UTF-8 with feedparser's
    # windows-1252 fallback for undeclared Latin-1.
    charset = _charset(headers)
    if charset and not _self_described(content):
        fp_headers["content-type"] = f"application/xml; charset={charset}"
    else:
        fp_headers["content-type"] = "application/xml"

    result = feedparser.parse(
        content,
        response_headers=fp_headers,
        sanitize_html=False,  # html_to_text keeps text only; sanitising would double the work
        resolve_relative_uris=False,  # links are resolved here; markup links are dropped
    )
    feed = result.get("feed") or {}
    entries = result.get("entries") or []
    version = result.get("version") or ""
    bozo_exc = result.get("bozo_exception")
    bozo_reason = f"{type(bozo_exc).__name__}: {bozo_exc}" if result.get("bozo") else None
    title_detail = feed.get("title_detail") or {}
    title = content_text(feed.get("title"), title_detail.get("type")) or None
    if not version and not entries and not title:
        raise BadInputError(feed_url, f"not a feed ({bozo_reason or 'no feed elements'})")

    link = http_url(feed.get("link"), feed_url)
    language = feed.get("language") or headers.get("content-language") or None
    source = _source_for(feed_url, source_name, title, link)
    articles, skipped = entries_to_articles(
        entries,
        "entry",
        feed_url=feed_url,
        base_url=link_base(feed_url, link),
        source=source,
        tags=tags,
        language=language,
        fetched_at=fetched,
        max_body_chars=max_body_chars,
    )
    return ParsedFeed(
        articles=articles,
        title=title,
        link=link,
        language=language if isinstance(language, str) else None,
        version=version,
        bozo_reason=bozo_reason,
        encoding=decoded.encoding or result.get("encoding"),
        ttl_seconds=(_number(feed.get("ttl")) or 0) * 60 or None,
        update_period_seconds=_update_period(feed),
        entry_count=len(entries),
        skipped=skipped,
    )


def _parse_json_feed(
    content: bytes,
    *,
    feed_url: str,
    source_name: str | None,
    tags: Sequence[str],
    fetched_at: datetime,
    max_body_chars: int | None,
) -> ParsedFeed:
    document = read_json_feed(content, feed_url=feed_url)
    link = http_url(document.home_page_url)
    source = _source_for(feed_url, source_name, document.title, link)
    articles, skipped = entries_to_articles(
        document.entries,
        "item",
        feed_url=feed_url,
        base_url=link_base(feed_url, link),
        source=source,
        tags=tags,
        language=document.language,
        fetched_at=fetched_at,
        max_body_chars=max_body_chars,
    )
    return ParsedFeed(
        articles=articles,
        title=document.title,
        link=link,
        language=document.language,
        version=document.version,
        encoding="utf-8",
        entry_count=len(document.entries),
        skipped=skipped,
    )


def parse_feed_safely(content: bytes, **kwargs: Any) -> ParsedFeed | BadInputError:
    """:func:`parse_feed` for a process pool: a bad document comes back as the error."""
    try:
        return parse_feed(content, **kwargs)
    except BadInputError as exc:
        return exc


__all__ = ["MAX_FEED_BYTES", "ParsedFeed", "parse_feed", "parse_feed_safely"]
