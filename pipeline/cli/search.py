"""``newswire search``: full-text and faceted search over the article index."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from pipeline.cli.app import JsonOption, app, literal, load_settings, out, print_json
from pipeline.cli.render import search_tables


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="Full-text query; quotes for phrases.")] = "",
    facet: Annotated[
        list[str] | None,
        typer.Option(
            "--facet",
            "-f",
            help="person, organization, location, misc, topic, "
            "source, language, tag, keyword, author, cluster, time.",
        ),
    ] = None,
    filter_: Annotated[
        list[str] | None, typer.Option("--filter", help="FACET=VALUE, e.g. person='John Kerry'.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="Published on or after (ISO date).")] = None,
    until: Annotated[str | None, typer.Option(help="Published on or before (ISO date).")] = None,
    size: Annotated[int, typer.Option(help="Hits to return.")] = 10,
    offset: Annotated[int, typer.Option(help="Hits to skip.")] = 0,
    sort: Annotated[str, typer.Option(help="relevance or date.")] = "relevance",
    stories: Annotated[
        bool, typer.Option("--stories", help="One line per story (cluster), with counts.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Full-text and faceted search over the article index."""
    from pipeline.search.query import SearchRequest
    from pipeline.search.service import search as run_search

    request = SearchRequest(
        query=query,
        facets=tuple(facet or ()),
        filters=tuple(filter_ or ()),
        since=since,
        until=until,
        size=size,
        offset=offset,
        sort=sort,
    )
    if stories:
        from pipeline.search.stories import search_stories

        collapsed = asyncio.run(search_stories(load_settings(), request))
        if as_json:
            print_json(collapsed)
        else:
            out.print(search_stories_table(collapsed))
        return
    result = asyncio.run(run_search(load_settings(), request))
    if as_json:
        print_json(result.as_json())
        return
    for table in search_tables(result):
        out.print(table)


def _cells(*values: object) -> list[Text]:
    return literal(*("" if value is None else value for value in values))


@app.command()
def story(cluster_id: str, as_json: JsonOption = False) -> None:
    """One story: first seen, first source, sources, articles, top entities, timeline."""
    from pipeline.errors import ConfigError
    from pipeline.search.stories import get_story

    doc = asyncio.run(get_story(load_settings(), cluster_id))
    if doc is None:
        raise ConfigError(f"no story {cluster_id!r}")
    if as_json:
        print_json(doc)
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


@app.command()
def trends(
    facet: Annotated[
        str | None, typer.Option(help="person, organization, location or topic.")
    ] = None,
    since: Annotated[str, typer.Option(help="The window: 1h, 24h, 3d...")] = "24h",
    min_count: Annotated[int, typer.Option(help="Fewer articles than this: left out.")] = 3,
    size: Annotated[int, typer.Option(help="Values to show (or record per facet).")] = 20,
    record: Annotated[
        bool,
        typer.Option(
            "--record",
            help="Write the rows to the trends index (Kibana's rising panels read it): "
            "every facet unless --facet; run it hourly (cron, a Kubernetes CronJob).",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """What is rising: values unusual against their own last 7 days (hourly z-score)."""
    from pipeline.search.trends import TREND_FACETS, TrendRequest, record_trends
    from pipeline.search.trends import trends as run_trends

    if record:
        facets = [facet] if facet else list(TREND_FACETS)
        requests = [
            TrendRequest(facet=f, since=since, min_count=min_count, size=size) for f in facets
        ]
        settings = load_settings()
        written = asyncio.run(record_trends(settings, requests))
        if as_json:
            print_json({"index": settings.trend_index, "rows": written})
            return
        for name, rows in written.items():
            out.print(Text(f"{name}: {rows} row(s) written to {settings.trend_index}"))
        return
    facet = facet or "person"
    request = TrendRequest(facet=facet, since=since, min_count=min_count, size=size)
    ranked = asyncio.run(run_trends(load_settings(), request))
    if as_json:
        print_json([t.as_json() for t in ranked])
        return
    table = Table(title=Text(f"rising {facet} over the last {since}"))
    for column in ("value", "articles", "expected", "mean/h", "sd/h", "score"):
        table.add_column(column, justify="left" if column == "value" else "right")
    for trend in ranked:
        table.add_row(
            *_cells(
                trend.value, trend.count, f"{trend.expected:.2f}", f"{trend.baseline_mean:.2f}",
                f"{trend.baseline_std:.2f}", f"{trend.score:.2f}",
            )
        )  # fmt: skip
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
