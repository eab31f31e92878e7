"""What is rising (``newswire trends``): facet values whose count in the last window is
unusual against their own hourly baseline over the days before.

For each value: ``x`` articles in the window of ``W`` hours; over the baseline's hours,
mean ``m`` and variance ``v`` per hour. Expected ``E = m * W``; the score is the z-score
``(x - E) / sqrt(max(v * W, E, 1))``: the variance is at least the Poisson one (``E``),
and at least 1, so a value never seen before scores by its count, not to infinity.
Values with fewer than ``min_count`` articles in the window are left out.

``newswire trends --record`` writes the rows it computed to the trends index (one
document per facet, window, value and hour: :func:`trend_rows`), which Kibana's rising
panels read, so they show this score rather than a score of their own.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from pipeline.errors import ConfigError, SearchBackendError
from pipeline.search.query import facet_field, parse_duration
from pipeline.settings import Settings
from pipeline.sinks.backend import SearchBackend
from pipeline.sinks.engines import open_backend
from pipeline.sinks.templates import create_missing_index, index_body

log = structlog.get_logger(__name__)

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
    """One rising value, with its baseline (articles per hour: mean and standard deviation)."""

    value: str
    count: int
    expected: float
    score: float
    baseline_mean: float = 0.0
    baseline_std: float = 0.0

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("expected", "score", "baseline_mean", "baseline_std"):
            data[key] = round(data[key], 3)
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
        score_ = (count - expected) / spread
        out.append(Trend(value, count, expected, score_, mean, math.sqrt(variance)))
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
    backend = open_backend(settings)
    try:
        return await _trends(settings, backend, request)
    finally:
        await backend.close()


async def _trends(settings: Settings, backend: SearchBackend, request: TrendRequest) -> list[Trend]:
    """:func:`trends` on an open backend."""
    base, start, end = window(request)
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
    window_hours = (end - start).total_seconds() / 3600
    baseline_hours = round((start - base).total_seconds() / 3600)
    ranked = score(current, hourly, window_hours, baseline_hours, request.min_count)
    return ranked[: request.size]


def trend_rows(
    request: TrendRequest, ranked: Sequence[Trend], end: datetime
) -> list[dict[str, Any]]:
    """The trends-index documents of one computation: ``hour`` is the window's end
    truncated to the hour, so computing again within the hour replaces its rows."""
    hour = end.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    window_hours = parse_duration(request.since) / 3600
    rows = []
    for rank, trend in enumerate(ranked, start=1):
        rows.append(
            {
                "facet": request.facet, "value": trend.value, "since": request.since,
                "window_hours": window_hours, "hour": hour.isoformat(),
                "window_end": end.astimezone(UTC).isoformat(), "rank": rank,
                "count": trend.count, "expected": trend.expected,
                "baseline_mean": trend.baseline_mean, "baseline_std": trend.baseline_std,
                "baseline_days": request.baseline_days, "score": trend.score,
                "computed_at": datetime.now(UTC).isoformat(),
            }
        )  # fmt: skip
    return rows


def row_id(row: Mapping[str, Any]) -> str:
    """One document per facet, window, hour and value."""
    key = "\x1f".join(str(row[k]) for k in ("facet", "since", "hour", "value"))
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def trends_index_body() -> dict[str, Any]:
    return index_body("trends-index.json")


async def install_trends_index(backend: SearchBackend, name: str) -> bool:
    """Create the trends index when missing; True when created."""
    created = await create_missing_index(backend, name, "trends-index.json")
    if created:
        log.info("trends.index_created", index=name)
    return created


async def record_trends(settings: Settings, requests: Sequence[TrendRequest]) -> dict[str, int]:
    """Compute each request's trends and write them to the trends index (created when
    missing); returns the rows written per facet. Raises SearchBackendError when the
    engine refuses a row."""
    written: dict[str, int] = {}
    backend = open_backend(settings)
    try:
        await install_trends_index(backend, settings.trend_index)
        for request in requests:
            _, _, end = window(request)
            ranked = (await _trends(settings, backend, request))[: request.size]
            rows = trend_rows(request, ranked, end)
            operations: list[dict[str, Any]] = []
            for row in rows:
                operations += [{"index": {"_index": settings.trend_index, "_id": row_id(row)}}, row]
            if operations:
                answer = await backend.bulk(operations, refresh="wait_for")
                if answer.get("errors"):
                    failed = [i for i in answer["items"] if i["index"].get("error")]
                    raise SearchBackendError(
                        f"the trends index refused {len(failed)} row(s): "
                        f"{failed[0]['index']['error']}"
                    )
            written[request.facet] = len(rows)
            log.info("trends.recorded", facet=request.facet, rows=len(rows), since=request.since)
    finally:
        await backend.close()
    return written


__all__ = [
    "TREND_FACETS",
    "Trend",
    "TrendRequest",
    "baseline_body",
    "current_body",
    "install_trends_index",
    "record_trends",
    "row_id",
    "score",
    "trend_rows",
    "trends",
]
