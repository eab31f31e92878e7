"""``newswire index``, ``export``, ``reprocess``, ``snapshot``: thin commands over
:mod:`pipeline.archive` (tables, or ``--json`` for machines)."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from pipeline.cli.app import JsonOption, app, err, out, print_json
from pipeline.cli.app import load_settings as settings
from pipeline.endpoints import read_endpoints

FilterOption = Annotated[
    list[str] | None, typer.Option("--filter", help="FACET=VALUE, as in `newswire search`.")
]
SinceOption = Annotated[str | None, typer.Option(help="Published on or after (ISO date).")]
UntilOption = Annotated[str | None, typer.Option(help="Published on or before (ISO date).")]

index_app = typer.Typer(
    help="The index generations behind the alias: list, rollover, retire.", no_args_is_help=True
)
app.add_typer(index_app, name="index")
snapshot_app = typer.Typer(
    help="Snapshots of every generation to a filesystem repository.", no_args_is_help=True
)
app.add_typer(snapshot_app, name="snapshot")


def _snapshot_settings() -> Any:
    """The settings with, for the local stack's node, its ``path.repo`` folder as the
    repository location when none is configured (the stack sets ``path.repo`` to
    ``<home>/elasticsearch/snapshots``)."""
    current = settings()
    if current.snapshot_location is None and read_endpoints(current.home) is not None:
        local = current.home.resolve() / "elasticsearch" / "snapshots"
        return current.model_copy(update={"snapshot_location": str(local)})
    return current


def _gb(size: int) -> str:
    """A size in bytes, short."""
    return f"{size / 1e9:.2f} GB" if size >= 1e8 else f"{size / 1e6:.1f} MB"


@index_app.command("list")
def index_list(as_json: JsonOption = False) -> None:
    """The generations: documents, primary size, newest article, the write index."""
    from pipeline.archive import index_list as run

    generations = asyncio.run(run(settings()))
    rows: list[dict[str, Any]] = [
        {
            "index": g.name,
            "write": g.write,
            "docs": g.docs,
            "bytes": g.bytes,
            "created": g.created,
            "newest_fetched": g.newest_fetched,
        }
        for g in generations
    ]
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{len(rows)} generation(s)")
    for column in ("index", "write", "docs", "size", "created", "newest fetched"):
        table.add_column(column, justify="right" if column in ("docs", "size") else "left")
    for row in rows:
        table.add_row(
            Text(str(row["index"])),
            "yes" if row["write"] else "",
            f"{row['docs']:,}",
            _gb(int(row["bytes"] or 0)),
            str(row["created"] or "")[:19],
            str(row["newest_fetched"] or "")[:19],
        )
    out.print(table)


@index_app.command("rollover")
def index_rollover(
    now: Annotated[bool, typer.Option("--now", help="Roll over whatever the limits.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say if it would.")] = False,
    as_json: JsonOption = False,
) -> None:
    """A new generation when a NEWSWIRE_INDEX_ROLLOVER_* limit is met (or --now)."""
    from pipeline.archive import index_rollover as run

    result = asyncio.run(run(settings(), now=now, dry_run=dry_run))
    data = {
        "rolled_over": result.rolled_over,
        "old_index": result.old_index,
        "new_index": result.new_index,
        "conditions": result.conditions,
        "dry_run": result.dry_run,
    }
    if as_json:
        print_json(data)
        return
    for key, value in data.items():
        out.print(Text(f"{key:>12}: {value}"))


@index_app.command("retire")
def index_retire(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list them.")] = False,
    empty: Annotated[
        bool, typer.Option("--empty", help="Also the empty old generations (relocated).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete whole generations past NEWSWIRE_INDEX_RETENTION_DAYS (never the write index)."""
    from pipeline.archive import index_retire as run

    doomed = asyncio.run(run(settings(), dry_run=dry_run, empty=empty))
    rows = [{"index": g.name, "docs": g.docs, "newest_fetched": g.newest_fetched} for g in doomed]
    if as_json:
        print_json({"retired": rows, "dry_run": dry_run})
        return
    verb = "would delete" if dry_run else "deleted"
    out.print(Text(f"{verb} {len(rows)} generation(s)"))
    for row in rows:
        out.print(Text(f"  {row['index']}: {row['docs']:,} docs, newest {row['newest_fetched']}"))


@app.command()
def export(
    query: Annotated[str, typer.Argument(help="Full-text query, as in search.")] = "",
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    fields: Annotated[
        str | None, typer.Option(help="Comma-separated dotted fields (default: all / CSV set).")
    ] = None,
    filter_: FilterOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
) -> None:
    """Every matching article to stdout (JSON Lines or CSV); progress on stderr."""
    from pipeline.archive import run_export
    from pipeline.search.export import parse_fields
    from pipeline.search.scan import article_query

    started = time.monotonic()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 1 or done == total:
            last[0] = now
            rate = done / max(now - started, 1e-6)
            err.print(f"[dim]exported {done:,}/{total:,} ({rate:,.0f}/s)[/dim]")

    query_body = article_query(query, tuple(filter_ or ()), since, until)
    report = asyncio.run(
        run_export(
            settings(),
            query_body,
            sys.stdout,
            fmt=fmt,
            fields=parse_fields(fields),
            progress=progress,
        )
    )
    if report.written != report.expected:
        err.print(
            f"[yellow]note:[/yellow] {report.written:,} exported, {report.expected:,} "
            "counted at the start (articles were indexed or deleted meanwhile)"
        )


@app.command()
def reprocess(
    query: Annotated[str, typer.Argument(help="Full-text query, as in search.")] = "",
    stale: Annotated[
        bool, typer.Option("--stale", help="Only articles of another enrichment version.")
    ] = False,
    filter_: FilterOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    relocate: Annotated[
        bool,
        typer.Option(
            "--relocate", help="Move the articles to the write index (after a mapping change)."
        ),
    ] = False,
    keep_enrichment: Annotated[
        bool,
        typer.Option("--keep-enrichment", help="With --relocate: copy, do not re-enrich."),
    ] = False,
    checkpoint: Annotated[
        str | None, typer.Option(help="Checkpoint file (default: under NEWSWIRE_HOME).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Re-enrich indexed articles with the current recogniser and rules, during ingest."""
    from pathlib import Path

    from pipeline.archive import run_reprocess
    from pipeline.errors import ConfigError
    from pipeline.worker.reprocess import Selection

    if keep_enrichment and not relocate:
        raise ConfigError("--keep-enrichment goes with --relocate")
    selection = Selection(
        query=query,
        filters=tuple(filter_ or ()),
        since=since,
        until=until,
        stale=stale,
        relocate=relocate,
        reenrich=not keep_enrichment,
    )
    last = [0.0]

    def progress(report: Any) -> None:
        now = time.monotonic()
        if now - last[0] >= 2:
            last[0] = now
            err.print(
                f"[dim]reprocessed {report.done:,}/{report.selected:,} "
                f"({report.rate:,.1f}/s, {report.newer} newer kept, "
                f"{len(report.failed)} failed)[/dim]"
            )

    report = asyncio.run(
        run_reprocess(
            settings(),
            selection,
            checkpoint=Path(checkpoint) if checkpoint else None,
            progress=progress,
        )
    )
    data = {
        "enrichment_version": report.version,
        "selected": report.selected,
        "done": report.done,
        "rewritten": report.rewritten,
        "newer_kept": report.newer,
        "rejected": [{"id": i, "reason": r} for i, r in report.rejected],
        "failed": [{"id": i, "traceback": t} for i, t in report.failed],
        "resumed_from": report.resumed_from,
        "seconds": round(report.seconds, 1),
        "articles_per_s": round(report.rate, 1),
    }
    if as_json:
        print_json(data)
        return
    for key, value in data.items():
        if key in ("rejected", "failed"):
            value = len(value)
        out.print(Text(f"{key:>18}: {value}"))


@snapshot_app.command("create")
def snapshot_create(
    name: Annotated[str | None, typer.Argument(help="Snapshot name (default: a time).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Snapshot every generation and the alias (waits for completion)."""
    from pipeline.archive import snapshot_create as run

    info = asyncio.run(run(_snapshot_settings(), name))
    if as_json:
        print_json(info.as_json())
        return
    out.print(Text(f"{info.name}: {info.state}, {len(info.indices)} index(es)"))


@snapshot_app.command("list")
def snapshot_list(as_json: JsonOption = False) -> None:
    """The snapshots of the repository."""
    from pipeline.archive import snapshot_list as run

    infos = asyncio.run(run(_snapshot_settings()))
    if as_json:
        print_json([i.as_json() for i in infos])
        return
    table = Table(title=f"{len(infos)} snapshot(s)")
    for column in ("name", "state", "indices", "started"):
        table.add_column(column)
    for info in infos:
        table.add_row(Text(info.name), info.state, str(len(info.indices)), str(info.started or ""))
    out.print(table)


@snapshot_app.command("restore")
def snapshot_restore(
    name: Annotated[str, typer.Argument(help="The snapshot to restore.")],
    replace: Annotated[
        bool, typer.Option("--replace", help="Delete the live generations first.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Restore a snapshot's generations with their alias."""
    from pipeline.archive import snapshot_restore as run

    indices = asyncio.run(run(_snapshot_settings(), name, replace=replace))
    if as_json:
        print_json({"restored": indices})
        return
    out.print(Text(f"restored {len(indices)} index(es): {', '.join(indices)}"))
