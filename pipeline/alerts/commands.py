"""``newswire alerts ...``, ``newswire story ID`` and ``newswire trends``: thin commands
(parse, call the runtime package, print a table or ``--json``)."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pipeline.logs import configure
from pipeline.settings import Settings, get_settings

alerts_app = typer.Typer(
    help="Standing queries: told when an article matching them is indexed.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]
FilterOption = Annotated[
    list[str] | None,
    typer.Option("--filter", help="FACET=VALUE (person, topic, language, source, ...)."),
]


def _settings() -> Settings:
    settings = get_settings()
    configure(settings.log_level, settings.log_format)
    return settings


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")


def _cells(*values: object) -> list[Text]:
    return [Text("" if value is None else str(value)) for value in values]


@alerts_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="A name of your own (letters, digits, . _ -).")],
    query: Annotated[str, typer.Option("--query", "-q", help="The query, as for search.")] = "",
    filter_: FilterOption = None,
    webhook: Annotated[str | None, typer.Option(help="POST each match here (JSON).")] = None,
    digest: Annotated[
        str | None, typer.Option(help="Gather the webhook's matches per window, e.g. 1h.")
    ] = None,
    replace: Annotated[bool, typer.Option(help="Replace an alert of that name.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Save a standing query; every worker applies it within seconds. The webhook's signing
    secret is printed once here (and by ``alerts show --secret``)."""
    from pipeline.alerts.service import add_alert

    alert = asyncio.run(
        add_alert(
            _settings(), name, query, tuple(filter_ or ()),
            webhook=webhook, digest=digest, replace=replace,
        )
    )  # fmt: skip
    data = alert.model_dump(mode="json")
    if as_json:
        _print_json(data)
        return
    err.print(Text(f"alert {alert.name} saved"))
    if alert.webhook:
        out.print(Text(f"webhook secret (HMAC-SHA256 key): {alert.secret}"))


@alerts_app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """Every standing query, with its webhook's last delivery (and last error)."""
    from pipeline.alerts.service import list_alerts

    rows = asyncio.run(list_alerts(_settings()))
    if as_json:
        _print_json(rows)
        return
    table = Table(title=f"{len(rows)} alert(s)")
    for column in ("name", "query", "filters", "webhook", "digest", "delivery", "last error"):
        table.add_column(column, overflow="fold")
    for row in rows:
        delivery = row.get("delivery") or {}
        state = "" if not delivery else ("ok" if delivery.get("ok") else "FAILING")
        table.add_row(
            *_cells(
                row["name"], row["query"], ", ".join(row["filters"]), row.get("webhook"),
                row.get("digest_seconds"), state, delivery.get("last_error"),
            )
        )  # fmt: skip
    out.print(table)


@alerts_app.command("show")
def show(
    name: str,
    secret: Annotated[bool, typer.Option("--secret", help="Include the signing secret.")] = False,
    as_json: JsonOption = False,
) -> None:
    """One standing query."""
    from pipeline.alerts.service import show_alert

    data = asyncio.run(show_alert(_settings(), name, secret=secret))
    if as_json:
        _print_json(data)
        return
    table = Table(title=Text(f"alert {name}"), show_header=False)
    for key, value in data.items():
        table.add_row(*_cells(key, json.dumps(value, default=str) if value is not None else ""))
    out.print(table)


@alerts_app.command("remove")
def remove(name: str) -> None:
    """Remove a standing query (every worker stops matching it within seconds)."""
    from pipeline.alerts.service import delete_alert

    asyncio.run(delete_alert(_settings(), name))
    err.print(Text(f"alert {name} removed"))


@alerts_app.command("test")
def test(
    name: Annotated[str | None, typer.Argument(help="A saved alert, or --query.")] = None,
    query: Annotated[str | None, typer.Option("--query", "-q")] = None,
    filter_: FilterOption = None,
    days: Annotated[float, typer.Option(help="How far back.")] = 7.0,
    size: Annotated[int, typer.Option(help="Matches to show.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Back-test: what the query would have matched over the last DAYS (from the index)."""
    from pipeline.alerts.registry import load_alerts
    from pipeline.alerts.service import backtest
    from pipeline.errors import ConfigError

    settings = _settings()
    filters = tuple(filter_ or ())
    if name is not None:
        alert = asyncio.run(load_alerts(settings)).get(name)
        if alert is None:
            raise ConfigError(f"no alert named {name!r}")
        query, filters = alert.query, alert.filters
    if query is None and not filters:
        raise ConfigError("give an alert name or --query")
    result = asyncio.run(backtest(settings, query or "", filters, days=days, size=size))
    if as_json:
        _print_json(result.as_json())
        return
    table = Table(title=f"{result.total} match(es) over the last {days:g} day(s)")
    for column in ("published", "title", "source", "url"):
        table.add_column(column, overflow="fold")
    for hit in result.hits:
        table.add_row(
            *_cells(
                (hit.get("published_at") or "")[:16], hit.get("title"),
                (hit.get("source") or {}).get("name"), hit.get("url"),
            )
        )  # fmt: skip
    out.print(table)


@alerts_app.command("deliver")
def deliver() -> None:
    """Run the webhook delivery service (a consumer of the alerts topic) until Ctrl-C."""
    from pipeline.alerts.delivery import Delivery

    settings = _settings()

    async def main() -> None:
        stop = asyncio.Event()
        try:
            await Delivery(settings).run(stop)
        except asyncio.CancelledError:
            stop.set()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        err.print("stopped")


def story(cluster_id: str, as_json: JsonOption = False) -> None:
    """One story: first seen, first source, sources, articles, top entities, timeline."""
    from pipeline.errors import ConfigError
    from pipeline.search.stories import get_story

    doc = asyncio.run(get_story(_settings(), cluster_id))
    if doc is None:
        raise ConfigError(f"no story {cluster_id!r}")
    if as_json:
        _print_json(doc)
        return
    table = Table(title=Text(f"story {cluster_id}"), show_header=False)
    for key in (
        "title", "first_seen", "first_source", "first_url", "last_seen", "article_count",
        "copy_count", "source_count", "sources", "top_person", "top_organization",
        "top_location", "top_topics",
    ):  # fmt: skip
        value = doc.get(key)
        table.add_row(*_cells(key, ", ".join(value) if isinstance(value, list) else value))
    out.print(table)
    timeline = Table(title="timeline (articles per hour)")
    timeline.add_column("hour")
    timeline.add_column("articles", justify="right")
    for point in doc.get("timeline", [])[-48:]:
        timeline.add_row(*_cells(point["hour"], point["count"]))
    out.print(timeline)


def trends(
    facet: Annotated[str, typer.Option(help="person, organization, location or topic.")] = "person",
    since: Annotated[str, typer.Option(help="The window: 1h, 24h, 3d...")] = "24h",
    min_count: Annotated[int, typer.Option(help="Fewer articles than this: left out.")] = 3,
    size: Annotated[int, typer.Option(help="Values to show.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """What is rising: values unusual against their own last 7 days (hourly z-score)."""
    from pipeline.search.trends import TrendRequest
    from pipeline.search.trends import trends as run_trends

    request = TrendRequest(facet=facet, since=since, min_count=min_count, size=size)
    ranked = asyncio.run(run_trends(_settings(), request))
    if as_json:
        _print_json([t.as_json() for t in ranked])
        return
    table = Table(title=Text(f"rising {facet} over the last {since}"))
    for column in ("value", "articles", "expected", "score"):
        table.add_column(column, justify="left" if column == "value" else "right")
    for trend in ranked:
        table.add_row(
            *_cells(trend.value, trend.count, f"{trend.expected:.2f}", f"{trend.score:.2f}")
        )
    out.print(table)


def search_stories_table(result: dict[str, Any]) -> Table:
    """``search --stories``: one line per story."""
    table = Table(title=f"{result['total']} article(s) in {result['stories']} story(ies)")
    for column in ("first seen", "title", "matching", "articles", "sources", "first source"):
        table.add_column(column, overflow="fold")
    for hit in result["hits"]:
        story_ = hit["story"]
        table.add_row(
            *_cells(
                (story_.get("first_seen") or hit.get("published_at") or "")[:16],
                story_.get("title") or hit.get("title"), story_["matching_articles"],
                story_.get("article_count"), story_.get("source_count"),
                story_.get("first_source"),
            )
        )  # fmt: skip
    return table


__all__ = ["alerts_app", "search_stories_table", "story", "trends"]
