"""Rich tables of the commands' results; text from feeds and the index is always literal."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from pipeline.cli.app import literal


def enrich_table(records: list[dict[str, Any]]) -> Table:
    """One row per enriched line; feed text is escaped so it never acts as markup."""
    table = Table(title=f"{len(records)} article(s) enriched")
    columns = ("id", "lang", "recogniser", "people", "organizations", "places", "topics")
    for column in (*columns, "keywords"):
        table.add_column(column)
    for record in records:
        if "error" in record:
            table.add_row(
                escape(str(record.get("id") or "")),
                "",
                "",
                f"[red]{escape(record['error'])}[/red]",
            )
            continue
        entities = record.get("entities") or {}
        names = [
            ", ".join(entities.get(kind) or []) for kind in ("person", "organization", "location")
        ]
        topics = ", ".join(t["label"] for t in record.get("topics") or [])
        keywords = ", ".join((record.get("keywords") or [])[:5])
        cells = [
            str(record.get("id") or ""),
            record.get("language") or "",
            record.get("recogniser") or "",
            *names,
            topics,
            keywords,
        ]
        table.add_row(*(escape(cell) for cell in cells))
    return table


def feeds_list_table(path: Path, feeds: Sequence[Any]) -> Table:
    """One row per feed of the list; names, URLs and tags are literal text."""
    table = Table(title=Text(f"{len(feeds)} feeds in {path}"))
    for column in ("name", "url", "tags", "interval", "enabled", "fulltext"):
        table.add_column(column)
    for feed in feeds:
        table.add_row(
            *literal(
                feed.name or "",
                feed.url,
                ", ".join(feed.tags),
                f"{feed.interval:g}s" if feed.interval else "adaptive",
                "yes" if feed.enabled else "no",
                "yes" if feed.fulltext else "no",
            )
        )
    return table


def feeds_status_table(rows: Sequence[Any]) -> Table:
    """One row per feed's stored state; names, outcomes and errors are literal text."""
    table = Table(title="feeds status")
    columns = ("feed", "health", "last poll", "HTTP", "outcome", "new", "per day", "last new",
               "failures", "next poll", "error")  # fmt: skip
    for column in columns:
        table.add_column(column)

    def fmt(when: datetime | None) -> str:
        return when.strftime("%Y-%m-%d %H:%M:%S") if when else "-"

    for row in rows:
        table.add_row(
            *literal(
                row.name[:40], row.health, fmt(row.last_poll), row.http_status or "-",
                row.outcome or "-", row.new_items, f"{row.items_per_day:g}",
                fmt(row.last_new_item), row.consecutive_failures, fmt(row.next_poll),
                (row.disabled_reason or row.last_error or "")[:60],
            )
        )  # fmt: skip
    return table


def dlq_table(letters: Sequence[Any]) -> Table:
    """One row per dead letter; every cell is literal text (reasons quote feed text)."""
    table = Table(title=f"{len(letters)} dead letter(s)")
    for column in ("failed at", "stage", "partition:offset", "key", "reason"):
        table.add_column(column, overflow="fold")
    for letter in letters:
        table.add_row(
            *literal(
                (letter.failed_at or "")[:19],
                letter.stage,
                f"{letter.partition}:{letter.offset}",
                letter.key or "",
                letter.reason,
            )
        )
    return table


def search_tables(result: Any) -> list[Table]:
    """The hits table, then one table per facet; every cell from the index is literal
    text, and only the highlight's own ``**match**`` marks are styled."""
    table = Table(title=f"{result.total} article(s)", show_lines=False)
    for column in ("published", "title", "source", "lang", "topics", "people", "match"):
        table.add_column(column, overflow="fold")
    for hit in result.hits:
        highlight = hit.get("highlight") or {}
        fragments = highlight.get("body") or highlight.get("summary") or []
        table.add_row(
            *literal(
                (hit.get("published_at") or "")[:10],
                hit.get("title") or "",
                (hit.get("source") or {}).get("name") or "",
                hit.get("language") or "",
                ", ".join(t["label"] for t in (hit.get("topics") or [])[:2]),
                ", ".join(((hit.get("entities") or {}).get("person") or [])[:4]),
            ),
            emphasis(fragments[0]) if fragments else "",
        )
    tables = [table]
    for name, buckets in result.facets.items():
        facet_table = Table(title=Text(f"facet: {name}"))
        facet_table.add_column("value")
        facet_table.add_column("count", justify="right")
        for bucket in buckets:
            facet_table.add_row(*literal(bucket["value"], bucket["count"]))
        tables.append(facet_table)
    return tables


def emphasis(fragment: str) -> Text:
    """A highlight fragment with its ``**match**`` marks shown in bold, the rest literal."""
    text = Text()
    for index, piece in enumerate(re.split(r"\*\*(.+?)\*\*", fragment)):
        text.append(piece, style="bold" if index % 2 else None)
    return text
