"""``newswire feeds``: the feed list (the ``newswire.feeds`` topic, YAML or OPML files)
and its polling state."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.text import Text

from pipeline.cli.app import (
    FeedsOption,
    JsonOption,
    err,
    feeds_app,
    load_settings,
    out,
    print_json,
)
from pipeline.cli.render import feeds_list_table, feeds_status_table


@feeds_app.command("import")
def feeds_import(
    opml: Annotated[Path, typer.Argument(help="An OPML (or YAML) file of feeds.")],
    feeds: FeedsOption = None,
    topic: Annotated[
        bool,
        typer.Option(
            "--topic", help="Write to the feeds topic (the list of record running pollers follow)."
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Merge a feed file into the YAML feed list, or with --topic into the feeds topic."""
    from pipeline.sources.feeds import import_opml, load_feeds

    if topic:
        _write_topic(load_feeds(opml), (), as_json)

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
def feeds_status(
    feeds: FeedsOption = None,
    health: Annotated[
        str | None, typer.Option(help="Only feeds that are new, ok, backoff, disabled or off.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Feeds per page.")] = 50,
    cursor: Annotated[
        str | None, typer.Option(help="Where to go on: the next_cursor of the previous page.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Health, last poll, items per day, last new item, failures and next poll of each feed,
    a page at a time (at most 4 partitions of the feeds and state topics a page: a page
    filtered by a rare health may be short, its next cursor goes on)."""
    from pipeline.sources.status import read_feed_status_page

    page = asyncio.run(
        read_feed_status_page(load_settings(), feeds, health=health, cursor=cursor, limit=limit)
    )
    if as_json:
        print_json({"feeds": [_row_json(r) for r in page.rows], "next_cursor": page.next_cursor})
        return
    out.print(feeds_status_table(page.rows))
    if page.next_cursor:
        err.print(Text(f"next page: --cursor {page.next_cursor}"))


def _row_json(row: Any) -> dict[str, Any]:
    from dataclasses import asdict

    data = asdict(row)
    for key, value in data.items():
        if hasattr(value, "isoformat"):
            data[key] = value.isoformat()
    return data


@feeds_app.command("add")
def feeds_add(
    url: Annotated[str, typer.Argument(help="The feed URL.")],
    name: Annotated[str | None, typer.Option(help="A display name.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A tag (repeat for more).")] = None,
    interval: Annotated[str | None, typer.Option(help="Fixed interval: 600, 10m, 2h.")] = None,
    fulltext: Annotated[bool, typer.Option(help="Fetch each article page.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Add (or change) one feed in the feeds topic; running pollers pick it up."""
    from pipeline.sources.feeds import build_feed_list

    entry: dict[str, object] = {"url": url, "name": name, "tags": tag or [], "fulltext": fulltext}
    if interval is not None:
        entry["interval"] = interval
    _write_topic(build_feed_list([entry]), (), as_json)


@feeds_app.command("remove")
def feeds_remove(
    urls: Annotated[list[str], typer.Argument(help="Feed URLs to remove.")],
    as_json: JsonOption = False,
) -> None:
    """Remove feeds from the feeds topic (their poller state is tombstoned)."""
    from pipeline.sources.feeds import FeedList

    _write_topic(FeedList(), urls, as_json)


def _write_topic(incoming: Any, remove: Any, as_json: bool) -> NoReturn:
    """Write feed changes to the feeds topic and report what changed."""
    from pipeline.kafka.client import bootstrap
    from pipeline.sources.feedtopic import put_feeds

    settings = load_settings()
    change = asyncio.run(put_feeds(bootstrap(settings), settings, incoming, remove=remove))
    if as_json:
        print_json(change.as_json())
    else:
        for error in change.errors:
            err.print(Text.assemble(("invalid", "red"), " ", str(error)))
        out.print(
            Text(
                f"{settings.topic_feeds}: {len(change.added)} added, {len(change.changed)} "
                f"changed, {len(change.unchanged)} unchanged, {len(change.removed)} removed, "
                f"{len(change.errors)} invalid"
            )
        )
    raise typer.Exit(1 if change.errors else 0)
