"""``newswire feeds``: the feed list (YAML or OPML) and its polling state."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from pipeline.cli.app import FeedsOption, err, feeds_app, load_settings, out
from pipeline.cli.render import feeds_list_table, feeds_status_table


@feeds_app.command("import")
def feeds_import(
    opml: Annotated[Path, typer.Argument(help="An OPML file to merge into the feed list.")],
    feeds: FeedsOption = None,
) -> None:
    """Merge an OPML file into the YAML feed list."""
    from pipeline.sources.feeds import import_opml

    target = feeds or load_settings().feeds_file
    result = import_opml(opml, target)
    for error in result.errors:
        err.print(Text.assemble(("skipped", "yellow"), " ", str(error)))
    err.print(
        Text(
            f"{len(result.added)} feeds added to {target}, "
            f"{len(result.skipped)} already listed, {len(result.errors)} invalid"
        )
    )
    raise typer.Exit(1 if result.errors else 0)


@feeds_app.command("export")
def feeds_export(
    fmt: Annotated[str, typer.Option("--format", help="opml or yaml.")] = "opml",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="File to write.")] = None,
    feeds: FeedsOption = None,
) -> None:
    """Print (or write) the feed list as OPML or YAML."""
    from pipeline.sources.feeds import feeds_export_command

    settings = load_settings()
    raise typer.Exit(feeds_export_command(feeds or settings.feeds_file, fmt, output))


@feeds_app.command("list")
def feeds_list(feeds: FeedsOption = None) -> None:
    """The feeds in the list, and the entries that are invalid (with why)."""
    from pipeline.sources.feeds import load_feeds

    path = feeds or load_settings().feeds_file
    found = load_feeds(path)
    out.print(feeds_list_table(path, found.feeds))
    for error in found.errors:
        out.print(Text.assemble(("invalid", "red"), " ", str(error)))
    raise typer.Exit(1 if found.errors else 0)


@feeds_app.command("status")
def feeds_status(feeds: FeedsOption = None) -> None:
    """Last poll, HTTP status, new items, consecutive failures and next poll of each feed."""
    from pipeline.sources.status import read_feed_status

    rows = asyncio.run(read_feed_status(load_settings(), feeds))
    out.print(feeds_status_table(rows))
