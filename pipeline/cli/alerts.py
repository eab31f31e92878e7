"""``newswire alerts``: standing queries (add, list, show, remove, test) and the webhook
delivery service; the logic is in :mod:`pipeline.alerts`."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from pipeline.cli.app import JsonOption, app, err, literal, load_settings, out, print_json

alerts_app = typer.Typer(
    help="Standing queries: told when an article matching them is indexed.",
    no_args_is_help=True,
)
app.add_typer(alerts_app, name="alerts")
FilterOption = Annotated[
    list[str] | None,
    typer.Option("--filter", help="FACET=VALUE (person, topic, language, source, ...)."),
]


def _cells(*values: object) -> list[Text]:
    return literal(*("" if value is None else value for value in values))


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
            load_settings(), name, query, tuple(filter_ or ()),
            webhook=webhook, digest=digest, replace=replace,
        )
    )  # fmt: skip
    data = alert.model_dump(mode="json")
    if as_json:
        print_json(data)
        return
    err.print(Text(f"alert {alert.name} saved"))
    if alert.webhook:
        out.print(Text(f"webhook secret (HMAC-SHA256 key): {alert.secret}"))


@alerts_app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """Every standing query, with its webhook's last delivery (and last error)."""
    from pipeline.alerts.service import list_alerts

    rows = asyncio.run(list_alerts(load_settings()))
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{len(rows)} alert(s)")
    for column in ("name", "query", "filters", "webhook", "digest", "delivery", "last error"):
        table.add_column(column, overflow="fold")
    for row in rows:
        delivery = row.get("delivery") or {}
        state = "" if not delivery else ("ok" if delivery.get("ok") else "FAILING")
        if delivery.get("failures"):
            state += f" ({delivery['failures']} failed tries in a row)"
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

    data = asyncio.run(show_alert(load_settings(), name, secret=secret))
    if as_json:
        print_json(data)
        return
    table = Table(title=Text(f"alert {name}"), show_header=False)
    for key, value in data.items():
        table.add_row(*_cells(key, json.dumps(value, default=str) if value is not None else ""))
    out.print(table)


@alerts_app.command("remove")
def remove(name: str) -> None:
    """Remove a standing query (every worker stops matching it within seconds)."""
    from pipeline.alerts.service import delete_alert

    asyncio.run(delete_alert(load_settings(), name))
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

    settings = load_settings()
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
        print_json(result.as_json())
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
    from pipeline.alerts.delivery import run_delivery

    settings = load_settings()
    try:
        asyncio.run(run_delivery(settings, asyncio.Event()))
    except KeyboardInterrupt:
        err.print("stopped")
