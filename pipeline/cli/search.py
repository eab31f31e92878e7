"""``newswire search``: full-text and faceted search over the article index."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from pipeline.cli.app import JsonOption, app, load_settings, out, print_json
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
    result = asyncio.run(run_search(load_settings(), request))
    if as_json:
        print_json(result.as_json())
        return
    for table in search_tables(result):
        out.print(table)
