"""Feed entries -> raw articles: links, GUIDs, text, dates, authors and tags of one
feedparser entry (or a dict with the same keys, as JSON Feed items are mapped to) as a
:class:`~pipeline.models.RawArticle`. Pure, unit-testable with plain dicts, no I/O."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from pipeline.identity import article_id, canonical_url, digest_id
from pipeline.models import RawArticle, Source, utcnow
from pipeline.sources.dates import parse_localized_date, struct_to_datetime
from pipeline.sources.html_text import collapse_spaces, content_text, html_to_text


def http_url(value: Any, base: str | None = None) -> str | None:
    """``value`` (resolved against ``base``) if it is an absolute HTTP(S) URL, else None."""
    if not isinstance(value, str) or not value.strip():
        return None
    url = value.strip()
    if base:
        url = urljoin(base, url)
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url


def _dedupe(values: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for value in values:
        cleaned = collapse_spaces(value)
        key = cleaned.casefold()
        if cleaned and key not in seen:
            seen.add(key)
            out.append(cleaned)
    return out


def _first_strings(items: Any, *keys: str) -> list[str]:
    """From each mapping of ``items``: the first of ``keys`` with a value, if a string."""
    out: list[str] = []
    for item in items or []:
        if isinstance(item, Mapping):
            value = None
            for key in keys:
                value = item.get(key)
                if value:
                    break
            if isinstance(value, str):
                out.append(value)
    return out


def _authors(entry: Mapping[str, Any]) -> list[str]:
    names = _first_strings(entry.get("authors"), "name", "email")
    if not names and isinstance(entry.get("author"), str):
        names.append(entry["author"])
    # "By Jane Doe and John Roe" style bylines stay whole: splitting names is NLP's job.
    return _dedupe(html_to_text(n) if "<" in n or "&" in n else n for n in names)


def _categories(entry: Mapping[str, Any]) -> list[str]:
    return _first_strings(entry.get("tags"), "term", "label")


def _guid(entry: Mapping[str, Any]) -> str | None:
    guid = entry.get("id") or entry.get("guid")
    return guid.strip() if isinstance(guid, str) and guid.strip() else None


def _truncate(text: str, limit: int | None) -> str:
    if limit is not None and len(text) > limit:
        return text[:limit].rstrip()
    return text


def _raw(entry: Mapping[str, Any], key: str) -> Any:
    # FeedParserDict.get maps "published" to "updated" with a DeprecationWarning; read
    # the plain dict so the fallback order stays ours.
    if isinstance(entry, dict):
        return dict.get(entry, key)
    return entry.get(key)


def entry_to_article(
    entry: Mapping[str, Any],
    *,
    feed_url: str,
    source: Source,
    tags: Sequence[str] = (),
    language: str | None = None,
    fetched_at: datetime | None = None,
    max_body_chars: int | None = None,
    base_url: str | None = None,
) -> RawArticle:
    """One feedparser entry (or a dict with the same keys) as a raw article.

    Relative links resolve against ``base_url`` (see :func:`link_base`), ``feed_url``
    when it is not given."""
    base = feed_url if base_url is None else base_url
    guid = _guid(entry)
    url = http_url(entry.get("link"), base)
    if url is None and guid and entry.get("guidislink", True):
        url = http_url(guid)
    if url is None:
        for link in entry.get("links") or []:
            if isinstance(link, Mapping) and link.get("rel", "alternate") == "alternate":
                url = http_url(link.get("href"), base)
                if url:
                    break

    title_detail = entry.get("title_detail") or {}
    title = content_text(entry.get("title"), title_detail.get("type")) or None
    if title:
        title = title.replace("\n\n", " ").replace("\n", " ")

    summary_detail = entry.get("summary_detail") or {}
    summary = content_text(entry.get("summary"), summary_detail.get("type"))
    body = ""
    for content in entry.get("content") or []:
        if isinstance(content, Mapping) and content.get("value"):
            text = content_text(content.get("value"), content.get("type"))
            if len(text) > len(body):
                body = text
    if summary and body and summary == body:
        # feedparser copies content into summary when there is no description.
        summary = body.split("\n\n", 1)[0]

    published = (
        struct_to_datetime(_raw(entry, "published_parsed"))
        or parse_localized_date(_raw(entry, "published"))
        or struct_to_datetime(_raw(entry, "updated_parsed"))
        or parse_localized_date(_raw(entry, "updated"))
    )

    if url is not None:
        ident = article_id(url)
    elif guid is not None:
        ident = article_id(None, feed_url=feed_url, guid=guid)
    else:
        fallback = "\x00".join(
            [title or "", summary, body, published.isoformat() if published else ""]
        )
        ident = digest_id(feed_url, "content:" + hashlib.sha256(fallback.encode()).hexdigest())

    entry_language = entry.get("language")
    return RawArticle(
        id=ident,
        url=url,
        canonical_url=canonical_url(url) if url else None,
        title=title,
        summary=_truncate(summary, max_body_chars) or None,
        body=_truncate(body, max_body_chars) or None,
        authors=_authors(entry),
        published_at=published,
        fetched_at=fetched_at or utcnow(),
        source=source,
        tags=_dedupe([*tags, *_categories(entry)]),
        language_hint=(entry_language if isinstance(entry_language, str) else None) or language,
    )


def link_base(feed_url: str, site_link: str | None) -> str | None:
    """What relative entry links resolve against when the feed has no ``xml:base``: the
    feed's own URL when it was fetched over HTTP(S); else (a feed replayed from a file,
    ``file://...``) the feed's site link (RSS channel ``<link>``, Atom alternate link,
    JSON Feed ``home_page_url``) when that is an absolute HTTP(S) URL; else nothing, and
    such links are dropped (the entry is then identified by its GUID)."""
    if http_url(feed_url) is not None:
        return feed_url
    return http_url(site_link)


def entries_to_articles(
    entries: Sequence[Any], label: str, **common: Any
) -> tuple[list[RawArticle], list[str]]:
    """One article per entry; entries that cannot be one (``None``: not an object) are
    listed with why, and the rest go on."""
    articles: list[RawArticle] = []
    skipped: list[str] = []
    for index, entry in enumerate(entries):
        if entry is None:
            skipped.append(f"{label} {index}: not an object")
            continue
        try:
            articles.append(entry_to_article(entry, **common))
        except (ValueError, TypeError) as exc:  # pydantic ValidationError is a ValueError
            skipped.append(f"{label} {index}: {exc}")
    return articles, skipped


__all__ = ["entries_to_articles", "entry_to_article", "http_url", "link_base"]
