"""Full text for feeds that carry only teasers (the per-feed ``fulltext`` flag).

The article page is fetched by the poller's :class:`~pipeline.sources.http.Fetcher` (the
same limits, timeouts, size cap, private-address refusal and checked redirects as feeds)
and its main text is extracted with trafilatura in the parse pool. A page that cannot be
fetched or yields no longer text leaves the article as the feed gave it.
"""

from __future__ import annotations

import asyncio

import structlog

from pipeline import metrics
from pipeline.errors import FetchError
from pipeline.models import RawArticle
from pipeline.sources.html_text import plain_text
from pipeline.sources.http import HTML_ACCEPT, Fetcher, failure_reason
from pipeline.sources.pool import ParsePool

log = structlog.get_logger(__name__)


def extract_main_text(page: bytes, url: str | None = None) -> str | None:
    """Main text of an HTML page without navigation, comments or boilerplate."""
    import trafilatura  # slow to import: only processes that extract load it

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


async def with_fulltext(
    fetcher: Fetcher,
    pool: ParsePool,
    feed_url: str,
    articles: list[RawArticle],
    max_chars: int,
) -> list[RawArticle]:
    """``articles`` with the main text of their page as body where that text is longer."""
    return list(
        await asyncio.gather(*(_fulltext(fetcher, pool, feed_url, a, max_chars) for a in articles))
    )


async def _fulltext(
    fetcher: Fetcher, pool: ParsePool, feed_url: str, article: RawArticle, max_chars: int
) -> RawArticle:
    if not article.url:
        return article
    try:
        page = await fetcher.fetch(article.url, {"Accept": HTML_ACCEPT})
        if page.not_modified or not page.body:
            return article
        text = await pool.run(page.final_url, extract_main_text, page.body, page.final_url)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        reason = failure_reason(exc)
        metrics.FULLTEXT_FETCHES.labels(outcome=reason).inc()
        log.warning(
            "poller.fulltext_failed", feed=feed_url, url=article.url, reason=reason,
            error=(str(exc) if isinstance(exc, FetchError) else repr(exc))[:300],
        )  # fmt: skip
        return article
    if not text or len(text) <= len(article.body or ""):
        metrics.FULLTEXT_FETCHES.labels(outcome="no_text").inc()
        return article
    metrics.FULLTEXT_FETCHES.labels(outcome="ok").inc()
    return article.model_copy(update={"body": text[:max_chars]})


__all__ = ["extract_main_text", "with_fulltext"]
