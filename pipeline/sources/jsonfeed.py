"""JSON Feed (https://jsonfeed.org/version/1.1) documents -> feedparser-style entries, so
one entry mapping (:mod:`pipeline.sources.entries`) serves RSS, Atom and JSON Feed.
Pure, no I/O."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.errors import BadInputError
from pipeline.sources.dates import parse_iso_datetime


@dataclass(slots=True)
class JsonFeedDocument:
    """What a JSON Feed says about itself, and its items as entries (``None``: an item
    that is not an object)."""

    version: str
    title: str | None
    home_page_url: Any
    language: str | None
    entries: list[dict[str, Any] | None]


def _json_authors(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    authors = obj.get("authors")
    if isinstance(authors, list):
        return [a for a in authors if isinstance(a, dict)]
    author = obj.get("author")
    return [author] if isinstance(author, dict) else []


def json_item_to_entry(item: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON Feed item in feedparser's entry vocabulary (so one mapping serves both)."""
    entry: dict[str, Any] = {}
    item_id = item.get("id")
    if item_id is not None:
        entry["id"] = str(item_id)
    entry["link"] = item.get("url") or item.get("external_url")
    entry["guidislink"] = False
    if isinstance(item.get("title"), str):
        entry["title"] = item["title"]
        entry["title_detail"] = {"type": "text/plain"}
    if isinstance(item.get("summary"), str):
        entry["summary"] = item["summary"]
        entry["summary_detail"] = {"type": "text/plain"}
    if isinstance(item.get("content_html"), str):
        entry["content"] = [{"value": item["content_html"], "type": "text/html"}]
    elif isinstance(item.get("content_text"), str):
        entry["content"] = [{"value": item["content_text"], "type": "text/plain"}]
    entry["authors"] = _json_authors(item)
    entry["tags"] = [{"term": str(t)} for t in item.get("tags") or [] if isinstance(t, str)]
    for key, target in (
        ("date_published", "published_parsed"),
        ("date_modified", "updated_parsed"),
    ):
        parsed = parse_iso_datetime(item.get(key))
        if parsed is not None:
            entry[target] = parsed.utctimetuple()
    if isinstance(item.get("language"), str):
        entry["language"] = item["language"]
    return entry


def read_json_feed(content: bytes, *, feed_url: str) -> JsonFeedDocument:
    """A JSON Feed document's fields and entries; items without authors take the feed's.

    Raises :class:`BadInputError` naming ``feed_url`` for invalid JSON or JSON that is
    not a JSON Feed (no ``items`` list, no jsonfeed.org version)."""
    try:
        document = json.loads(content.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(feed_url, f"not a feed (invalid JSON: {exc})") from exc
    if not isinstance(document, dict) or not isinstance(document.get("items"), list):
        raise BadInputError(feed_url, "not a feed (JSON without an items list)")
    version_url = str(document.get("version") or "")
    if "jsonfeed.org" not in version_url:
        raise BadInputError(feed_url, "not a feed (JSON without a jsonfeed.org version)")
    version = "json" + version_url.rstrip("/").rsplit("/", 1)[-1].replace(".", "")
    title = document.get("title") if isinstance(document.get("title"), str) else None
    language = document.get("language") if isinstance(document.get("language"), str) else None
    feed_authors = _json_authors(document)
    entries: list[dict[str, Any] | None] = []
    for item in document["items"]:
        entry = json_item_to_entry(item) if isinstance(item, dict) else None
        if entry is not None and not entry["authors"]:
            entry["authors"] = feed_authors
        entries.append(entry)
    return JsonFeedDocument(
        version=version,
        title=title,
        home_page_url=document.get("home_page_url"),
        language=language,
        entries=entries,
    )


__all__ = ["JsonFeedDocument", "json_item_to_entry", "read_json_feed"]
