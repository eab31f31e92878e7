"""Reading every matching article: a point in time and ``search_after``, page by page.

Used by ``newswire export`` and ``newswire reprocess``. No 10,000 cap (``from``/``size``
stops at ``max_result_window``), memory of one page, and a position (the last sort value)
that survives a crash: the sort is on the article ``id`` (a keyword, unique per article),
so a new point in time can resume after the last id of a previous one.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.errors import SearchBackendError
from pipeline.search.query import SearchRequest, build_body
from pipeline.sinks.backend import SearchBackend

#: Articles per page: large enough to amortise the round trip, small enough to stay light.
PAGE_SIZE = 1000
KEEP_ALIVE = "5m"
SORT = [{"id": "asc"}]


def article_query(
    query: str = "",
    filters: Sequence[str] = (),
    since: str | None = None,
    until: str | None = None,
    extra: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The query of ``newswire search`` (same syntax and filters), plus ``extra`` filters."""
    body = build_body(SearchRequest(query=query, filters=filters, since=since, until=until))
    built: dict[str, Any] = body["query"]
    built["bool"]["filter"].extend(extra)
    return built


def page_body(
    pit_id: str,
    query: dict[str, Any],
    source: bool | Sequence[str],
    after: Sequence[Any] | None,
    size: int = PAGE_SIZE,
) -> dict[str, Any]:
    """One page's request (pure)."""
    body: dict[str, Any] = {
        "pit": {"id": pit_id, "keep_alive": KEEP_ALIVE},
        "query": query,
        "sort": SORT,
        "size": size,
        "track_total_hits": False,
        "_source": source if isinstance(source, bool) else list(source),
    }
    if after is not None:
        body["search_after"] = list(after)
    return body


@dataclass(frozen=True)
class Page:
    """One page of hits and the position after its last hit."""

    hits: list[dict[str, Any]]
    after: list[Any] | None


async def scan(
    backend: SearchBackend,
    index: str,
    query: dict[str, Any],
    *,
    source: bool | Sequence[str] = True,
    after: Sequence[Any] | None = None,
    size: int = PAGE_SIZE,
) -> AsyncIterator[Page]:
    """The pages of every article matching ``query``, in ``id`` order, from ``after`` on.

    The point in time is closed when the iteration ends (or is abandoned)."""
    pit_id = await backend.open_pit(index, KEEP_ALIVE)
    position = list(after) if after is not None else None
    try:
        while True:
            answer = await backend.search_pit(page_body(pit_id, query, source, position, size))
            pit_id = str(answer.get("pit_id", pit_id))  # it may change between pages
            hits = answer.get("hits", {}).get("hits", [])
            if not hits:
                return
            position = list(hits[-1]["sort"])
            yield Page(hits, position)
            if len(hits) < size:
                return
    finally:
        with contextlib.suppress(SearchBackendError):  # else it expires by itself
            await backend.close_pit(pit_id)


__all__ = ["KEEP_ALIVE", "PAGE_SIZE", "Page", "article_query", "page_body", "scan"]
