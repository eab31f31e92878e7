"""What is rising (``newswire trends``): facet values whose count in the last window is
unusual against their own hourly baseline over the days before.

For each value: ``x`` articles in the window of ``W`` hours; over the baseline's hours,
mean ``m`` and variance ``v`` per hour. Expected ``E = m * W``; the score is the z-score
``(x - E) / sqrt(max(v * W, E, 1))``: the variance is at least the Poisson one (``E``),
and at least 1, so a value never seen before scores by its count, not to infinity.
Values with fewer than ``min_count`` articles in the window are left out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.errors import ConfigError
from pipeline.search.query import facet_field, parse_duration
from pipeline.settings import Settings
from pipeline.sinks.engines import open_backend

TREND_FACETS = ("person", "organization", "location", "topic")
#: Values of the window considered (the most frequent ones).
CANDIDATES = 500


@dataclass(frozen=True)
class TrendRequest:
    """What ``newswire trends`` asks."""

    facet: str = "person"
    since: str = "24h"
    until: datetime | None = None
    baseline_days: int = 7
    min_count: int = 3
    size: int = 20


@dataclass(frozen=True)
class Trend:
    """One rising value."""

    value: str
    count: int
    expected: float
    score: float

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["expected"] = round(self.expected, 3)
        data["score"] = round(self.score, 3)
        return data


def score(
    current: Mapping[str, int],
    hourly: Mapping[str, Sequence[int]],
    window_hours: float,
    baseline_hours: int,
    min_count: int,
) -> list[Trend]:
    """Values ranked by z-score against their baseline (see the module docstring)."""
    out = []
    for value, count in current.items():
        if count < min_count:
            continue
        series = list(hourly.get(value, ()))
        series += [0] * (baseline_hours - len(series))  # hours without the value
        mean = sum(series) / baseline_hours if baseline_hours else 0.0
        variance = sum((c - mean) ** 2 for c in series) / baseline_hours if baseline_hours else 0
        expected = mean * window_hours
        spread = math.sqrt(max(variance * window_hours, expected, 1.0))
        out.append(Trend(value, count, expected, (count - expected) / spread))
    return sorted(out, key=lambda t: (-t.score, -t.count, t.value))


def window(request: TrendRequest) -> tuple[datetime, datetime, datetime]:
    """(baseline start, window start, window end)."""
    if request.facet not in TREND_FACETS:
        raise ConfigError(f"trends facet {request.facet!r}: one of {', '.join(TREND_FACETS)}")
    end = request.until or datetime.now(UTC)
    start = end - timedelta(seconds=parse_duration(request.since))
    return start - timedelta(days=request.baseline_days), start, end


def _range(start: datetime, end: datetime) -> dict[str, Any]:
    return {"range": {"published_at": {"gte": start.isoformat(), "lt": end.isoformat()}}}


def current_body(request: TrendRequest) -> dict[str, Any]:
    _, start, end = window(request)
    field = facet_field(request.facet)
    return {
        "size": 0,
        "query": {"bool": {"filter": [_range(start, end)]}},
        "aggs": {"values": {"terms": {"field": field, "size": CANDIDATES}}},
    }


def baseline_body(request: TrendRequest, values: Sequence[str]) -> dict[str, Any]:
    """Hourly counts of ``values`` over the baseline days (hours without them are absent)."""
    base, start, _ = window(request)
    field = facet_field(request.facet)
    return {
        "size": 0,
        "query": {"bool": {"filter": [_range(base, start), {"terms": {field: list(values)}}]}},
        "aggs": {
            "values": {
                "terms": {"field": field, "size": max(1, len(values)), "include": list(values)},
                "aggs": {
                    "hours": {"date_histogram": {"field": "published_at", "fixed_interval": "1h"}}
                },
            }
        },
    }


async def trends(settings: Settings, request: TrendRequest) -> list[Trend]:
    """The rising values of ``request.facet``, best first."""
    base, start, end = window(request)
    backend = open_backend(settings)
    try:
        now = await backend.search(settings.index_alias, current_body(request))
        current = {
            str(b["key"]): int(b["doc_count"])
            for b in now.get("aggregations", {}).get("values", {}).get("buckets", [])
        }
        wanted = [v for v, c in current.items() if c >= request.min_count]
        hourly: dict[str, list[int]] = {}
        if wanted:
            then = await backend.search(settings.index_alias, baseline_body(request, wanted))
            for bucket in then.get("aggregations", {}).get("values", {}).get("buckets", []):
                hours = bucket.get("hours", {}).get("buckets", [])
                hourly[str(bucket["key"])] = [int(h["doc_count"]) for h in hours]
    finally:
        await backend.close()
    window_hours = (end - start).total_seconds() / 3600
    baseline_hours = round((start - base).total_seconds() / 3600)
    ranked = score(current, hourly, window_hours, baseline_hours, request.min_count)
    return ranked[: request.size]


__all__ = [
    "TREND_FACETS",
    "Trend",
    "TrendRequest",
    "baseline_body",
    "current_body",
    "score",
    "trends",
]
