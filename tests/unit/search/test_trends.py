"""Trend scores: a burst against its own baseline beats a value that is always frequent."""

from datetime import UTC, datetime

import pytest

from pipeline.errors import ConfigError
from pipeline.search.trends import TrendRequest, baseline_body, current_body, score


def test_burst_beats_steady_high_and_min_count_applies() -> None:
    ranked = score(
        current={"steady": 30, "burst": 12, "rare": 2, "new": 4},
        hourly={"steady": [1, 2] * 84, "burst": [1] + [0] * 167},
        window_hours=24,
        baseline_hours=168,
        min_count=3,
    )
    assert [t.value for t in ranked] == ["burst", "new", "steady"]
    assert ranked[0].expected == pytest.approx(24 / 168)
    assert ranked[-1].score < 1  # 30 against an expected 36: not rising


def test_bodies_use_the_facet_field_and_windows() -> None:
    until = datetime(2026, 11, 30, tzinfo=UTC)
    request = TrendRequest(facet="location", since="24h", until=until)
    now = current_body(request)
    assert now["aggs"]["values"]["terms"]["field"] == "entities.location"
    assert now["query"]["bool"]["filter"][0]["range"]["published_at"]["gte"].startswith(
        "2026-11-29T00:00"
    )
    then = baseline_body(request, ["Paris"])
    assert then["query"]["bool"]["filter"][0]["range"]["published_at"]["gte"].startswith(
        "2026-11-22T00:00"
    )
    assert then["aggs"]["values"]["aggs"]["hours"]["date_histogram"]["fixed_interval"] == "1h"
    with pytest.raises(ConfigError, match="trends facet"):
        current_body(TrendRequest(facet="colour"))


def test_rows_carry_the_score_and_baseline_and_replace_within_the_hour() -> None:
    from pipeline.search.trends import row_id, trend_rows

    ranked = score(
        current={"burst": 12, "steady": 30},
        hourly={"steady": [1, 2] * 84, "burst": [1] + [0] * 167},
        window_hours=24, baseline_hours=168, min_count=3,
    )  # fmt: skip
    request = TrendRequest(facet="person", since="24h")
    rows = trend_rows(request, ranked, datetime(2026, 11, 30, 12, 40, tzinfo=UTC))
    first = rows[0]
    assert (first["value"], first["rank"], first["count"]) == ("burst", 1, 12)
    assert first["score"] == ranked[0].score and first["hour"] == "2026-11-30T12:00:00+00:00"
    assert rows[1]["baseline_mean"] == pytest.approx(1.5)
    assert rows[1]["baseline_std"] == pytest.approx(0.5)
    later = trend_rows(request, ranked, datetime(2026, 11, 30, 12, 55, tzinfo=UTC))
    assert row_id(later[0]) == row_id(first)
    next_hour = trend_rows(request, ranked, datetime(2026, 11, 30, 13, 5, tzinfo=UTC))
    assert row_id(next_hour[0]) != row_id(first)
