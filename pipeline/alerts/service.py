"""What the ``newswire alerts`` commands do (the CLI only parses and prints)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.alerts.model import Alert, new_alert
from pipeline.alerts.registry import load_alerts, load_status, remove_alert, save_alert
from pipeline.errors import ConfigError
from pipeline.search.query import SearchRequest, SearchResult
from pipeline.search.service import search
from pipeline.settings import Settings


async def add_alert(
    settings: Settings,
    name: str,
    query: str,
    filters: Sequence[str] = (),
    *,
    webhook: str | None = None,
    digest: str | None = None,
    replace: bool = False,
) -> Alert:
    """Check and save a standing query; every worker applies it within seconds. Raises
    QuerySyntaxError / ConfigError for bad input, and ConfigError when ``name`` exists
    (unless ``replace``; its secret is then kept)."""
    alert = new_alert(
        name,
        query,
        filters,
        webhook=webhook,
        digest=digest,
        allow_private=settings.allow_private_feeds,
    )
    existing = (await load_alerts(settings)).get(name)
    if existing is not None:
        if not replace:
            raise ConfigError(f"alert {name!r} exists; remove it first or use --replace")
        alert = alert.model_copy(update={"secret": existing.secret})
    await save_alert(settings, alert)
    return alert


async def list_alerts(settings: Settings) -> list[dict[str, Any]]:
    """Every standing query (no secrets) with its last webhook delivery result."""
    alerts = await load_alerts(settings)
    status = await load_status(settings)
    return [
        {**alert.public(), "delivery": status.get(name)} for name, alert in sorted(alerts.items())
    ]


async def show_alert(settings: Settings, name: str, *, secret: bool = False) -> dict[str, Any]:
    alert = (await load_alerts(settings)).get(name)
    if alert is None:
        raise ConfigError(f"no alert named {name!r}")
    data = alert.model_dump(mode="json") if secret else alert.public()
    return {**data, "delivery": (await load_status(settings)).get(name)}


async def delete_alert(settings: Settings, name: str) -> None:
    if name not in await load_alerts(settings):
        raise ConfigError(f"no alert named {name!r}")
    await remove_alert(settings, name)


async def backtest(
    settings: Settings,
    query: str,
    filters: Sequence[str] = (),
    *,
    days: float = 7.0,
    size: int = 20,
    now: datetime | None = None,
) -> SearchResult:
    """What a standing query would have matched over the last ``days`` (by published
    date), newest first: the same query, through the same search."""
    since = (now or datetime.now(UTC)) - timedelta(days=days)
    request = SearchRequest(
        query=query, filters=tuple(filters), since=since.isoformat(), size=size, sort="date"
    )
    return await search(settings, request)


__all__ = ["add_alert", "backtest", "delete_alert", "list_alerts", "show_alert"]
