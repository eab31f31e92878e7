"""``newswire dlq``: what failed, why, and replaying it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.text import Text

from pipeline.cli.app import JsonOption, dlq_app, err, load_settings, out, print_json
from pipeline.cli.render import dlq_table


@dlq_app.command("list")
def dlq_list(
    limit: Annotated[
        int, typer.Option(help="Records per page (1-1000); one page is read at a time.")
    ] = 50,
    cursor: Annotated[
        str | None,
        typer.Option(help="Where to go on: the next_cursor printed with the previous page."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Start at the first record written on or after this ISO date/time."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The records that could not be enriched or indexed, with the reason, a page at a time."""
    from pipeline.worker.dlq import read_dead_letters_page

    started = _parse_since(since) if since and cursor is None else None
    page = asyncio.run(
        read_dead_letters_page(load_settings(), limit=limit, cursor=cursor, since=started)
    )
    if as_json:
        print_json(page.as_json())
        return
    out.print(dlq_table(page.letters))
    if page.next_cursor:
        err.print(Text(f"more: newswire dlq list --limit {limit} --cursor {page.next_cursor}"))


def _parse_since(text: str) -> datetime:
    """An ISO date or date-time from the command line; naive values are UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO date: {text!r}", param_hint="--since") from exc
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@dlq_app.command("replay")
def dlq_replay(
    stage: Annotated[
        str | None, typer.Option(help="Only records that failed in this stage (enrich, sink).")
    ] = None,
    limit: Annotated[int, typer.Option(help="Records to read at most.")] = 1000,
) -> None:
    """Send the original records back to the topic of the stage that refused them (after a
    fix, e.g. a mapping change). The DLQ itself is left as it is."""
    from pipeline.worker.dlq import read_dead_letters, replay_dead_letters

    settings = load_settings()
    letters = asyncio.run(read_dead_letters(settings, limit))
    if stage:
        letters = [letter for letter in letters if letter.stage == stage]
    sent, skipped = asyncio.run(replay_dead_letters(settings, letters))
    for letter in skipped:
        err.print(Text.assemble(("not replayable", "yellow"), f" {letter.key}: {letter.reason}"))
    err.print(f"{sent} record(s) sent back")
