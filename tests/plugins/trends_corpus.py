"""pytest plugin (fixture ``trends_corpus``): dated articles over eight days with a burst
planted in the last one, for ``newswire trends`` and the Kibana rising panels."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.models import EnrichedArticle, Entities

UNTIL = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
BURST = "Volcano Island"
STEADY = "Steadyville"


@dataclass(frozen=True)
class TrendsCorpus:
    until: datetime
    articles: list[EnrichedArticle]


def _article(n: int, at: datetime, place: str) -> EnrichedArticle:
    return EnrichedArticle(
        id=f"tr{n:05d}", title=f"News from {place}", published_at=at, fetched_at=at,
        language="en", entities=Entities(location=[place]),
    )  # fmt: skip


def dated_articles() -> list[EnrichedArticle]:
    """Two Steadyville articles every hour of eight days, eight towns every fourth hour,
    Volcano Island once five days ago and ten times in the last day."""
    docs: list[EnrichedArticle] = []
    for hour in range(8 * 24):  # seven baseline days and the last day
        at = UNTIL - timedelta(hours=hour, minutes=30)
        docs += [_article(len(docs), at, STEADY), _article(len(docs) + 1, at, STEADY)]
        if hour % 4 == 0:
            docs += [_article(len(docs) + i, at, f"Town {i}") for i in range(8)]
    docs.append(_article(len(docs), UNTIL - timedelta(days=5), BURST))
    for k in range(10):  # the burst: ten articles in the last day
        docs.append(_article(len(docs), UNTIL - timedelta(hours=2 * k + 1), BURST))
    return docs


@pytest.fixture
def trends_corpus() -> TrendsCorpus:
    return TrendsCorpus(UNTIL, dated_articles())
