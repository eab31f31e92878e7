"""The ``newswire`` command line: thin wrappers over the stages."""

from __future__ import annotations

import asyncio
import io
import json
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from pipeline.errors import NewswireError
from pipeline.logs import configure
from pipeline.settings import Settings, get_settings

app = typer.Typer(
    help="Newswire: streaming news ingestion (feeds -> Kafka -> enrichment -> search).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
stack_app = typer.Typer(
    help="The local Kafka and search engine, without Docker.", no_args_is_help=True
)
app.add_typer(stack_app, name="stack")
dlq_app = typer.Typer(
    help="The dead-letter topic: what failed, why, and replaying it.", no_args_is_help=True
)
app.add_typer(dlq_app, name="dlq")
feeds_app = typer.Typer(
    help="The feed list (YAML or OPML) and its polling state.", no_args_is_help=True
)
app.add_typer(feeds_app, name="feeds")
out = Console()
err = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]


def _settings() -> Settings:
    settings = get_settings()
    configure(settings.log_level, settings.log_format)
    return settings


def _literal(*values: object) -> list[Text]:
    """Table cells shown as they are: feed text such as ``[/b]`` or ``[link=...]`` is never
    read as rich markup (which would style it, or raise ``MarkupError``)."""
    return [Text(str(value)) for value in values]


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")


# -- stack -------------------------------------------------------------------------------


def _stack(settings: Settings) -> Any:
    from pipeline.stack import LocalStack

    return LocalStack(settings, progress=lambda line: err.print(f"[dim]{line}[/dim]"))


def _status_table(status: Any) -> Table:
    table = Table(title="local stack")
    for column in ("service", "state", "version", "endpoint", "pid", "log"):
        table.add_column(column)
    for service in status.services:
        state = (
            "[green]up[/green]"
            if service.healthy
            else ("[yellow]starting[/yellow]" if service.running else "[red]down[/red]")
        )
        table.add_row(
            service.name,
            state,
            service.version or "",
            service.endpoint or "",
            str(service.pid or ""),
            str(service.log_file or ""),
        )
    return table


def _status_json(status: Any) -> dict[str, Any]:
    """The engine and versions first, then one entry per server."""
    names = {s.name for s in status.services}
    return {
        "home": str(status.home),
        "healthy": status.healthy,
        "search_engine": status.search_engine,
        "search_version": status.search.version if status.search_engine else None,
        "kafka_version": status.kafka.version if "kafka" in names else None,
        "services": [
            {
                "service": s.name,
                "running": s.running,
                "healthy": s.healthy,
                "version": s.version,
                "endpoint": s.endpoint,
                "pid": s.pid,
                "log_file": str(s.log_file) if s.log_file else None,
            }
            for s in status.services
        ],
    }


@stack_app.command("up")
def stack_up(as_json: JsonOption = False) -> None:
    """Start Apache Kafka and Elasticsearch (or OpenSearch); Maven downloads them once."""
    status = _stack(_settings()).up()
    _print_json(_status_json(status)) if as_json else out.print(_status_table(status))


@stack_app.command("down")
def stack_down() -> None:
    """Stop the local stack cleanly (SIGTERM, wait, then kill)."""
    _stack(_settings()).down()
    out.print("local stack stopped")


@stack_app.command("status")
def stack_status(as_json: JsonOption = False) -> None:
    """Whether each local service really answers."""
    status = _stack(_settings()).status()
    _print_json(_status_json(status)) if as_json else out.print(_status_table(status))
    if not all(s.healthy for s in status.services):
        raise typer.Exit(3)


# -- setup, worker, replay ---------------------------------------------------------------


@app.command()
def setup(as_json: JsonOption = False) -> None:
    """Create the Kafka topics, the index template and alias (and Kibana objects)."""
    from pipeline.provision import run_setup

    report = asyncio.run(run_setup(_settings()))
    index = report.index
    data = {
        "topics_created": report.topics_created,
        "topics_configured": report.topics_configured,
        "engine": index.engine if index else None,
        "engine_version": index.version if index else None,
        "analysis": index.variant if index else None,
        "alias": index.alias if index else None,
        "index_created": index.created_index if index else None,
        "kibana_objects": report.kibana_objects,
        "warnings": report.warnings,
    }
    if as_json:
        _print_json(data)
        return
    for key, value in data.items():
        out.print(Text(f"{key:>16}: {value}"))
    if index and index.variant == "standard":
        err.print(
            "[yellow]note:[/yellow] this node has no language analyzers; "
            "text fields use the standard analyzer (no stemming)"
        )


@app.command()
def worker() -> None:
    """Run the Faust worker: the enrichment and sink agents."""
    from pipeline.kafka.topics import ensure_topics
    from pipeline.worker.app import FaustWorker, create_app

    settings = _settings()
    asyncio.run(ensure_topics(settings))  # idempotent; the worker may start before setup
    FaustWorker(create_app(settings), settings).execute_from_commandline()


@app.command()
def replay(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders of articles.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print raw articles as JSONL; no Kafka.")
    ] = False,
) -> None:
    """Publish seed files (seed text, plain text, JSON, JSONL, RSS/Atom) as raw articles."""
    from pipeline.sources import replay as replaying

    settings = _settings()
    if dry_run:
        report = replaying.dry_run(paths, settings)
    else:
        report = asyncio.run(replaying.replay(paths, settings, console=err))
    for error in report.errors:
        err.print(Text.assemble(("skipped", "red"), " ", str(error)))
    err.print(
        f"{report.articles} article(s) from {report.files} file(s)"
        + ("" if dry_run else " published")
        + (f", {len(report.errors)} error(s)" if report.errors else "")
    )
    if report.errors and not report.articles:
        raise typer.Exit(1)


@app.command()
def enrich(
    jsonl: Annotated[
        bool,
        typer.Option(
            "--jsonl/--table",
            help="JSONL out, one line per line in (the default, for machines), or a table.",
        ),
    ] = True,
) -> None:
    """Enrich JSONL articles {id?, title?, summary?, body} from stdin without Kafka."""
    from pipeline.enrich.jsonl import enrich_jsonl

    settings = _settings()
    if jsonl:
        enrich_jsonl(sys.stdin, sys.stdout, batch_size=settings.batch_size)
        return
    buffer = io.StringIO()
    enrich_jsonl(sys.stdin, buffer, batch_size=settings.batch_size)
    out.print(_enrich_table([json.loads(line) for line in buffer.getvalue().splitlines()]))


def _enrich_table(records: list[dict[str, Any]]) -> Table:
    """One row per enriched line; feed text is escaped so it never acts as markup."""
    table = Table(title=f"{len(records)} article(s) enriched")
    for column in ("id", "lang", "people", "organizations", "places", "topics", "keywords"):
        table.add_column(column)
    for record in records:
        if "error" in record:
            table.add_row(
                escape(str(record.get("id") or "")), "", f"[red]{escape(record['error'])}[/red]"
            )
            continue
        entities = record.get("entities") or {}
        names = [
            ", ".join(entities.get(kind) or []) for kind in ("person", "organization", "location")
        ]
        topics = ", ".join(t["label"] for t in record.get("topics") or [])
        keywords = ", ".join((record.get("keywords") or [])[:5])
        cells = [
            str(record.get("id") or ""),
            record.get("language") or "",
            *names,
            topics,
            keywords,
        ]
        table.add_row(*(escape(cell) for cell in cells))
    return table


# -- feeds and polling -------------------------------------------------------------------

FeedsOption = Annotated[
    Path | None, typer.Option("--feeds", help="Feed list, YAML or OPML (NEWSWIRE_FEEDS_FILE).")
]


@app.command()
def poll(
    once: Annotated[bool, typer.Option("--once", help="One poll cycle, then exit.")] = False,
    feeds: FeedsOption = None,
) -> None:
    """Run the feed poller: conditional GETs, backoff, per-host limits, state in Kafka."""
    from pipeline.sources.service import poll_command

    raise typer.Exit(asyncio.run(poll_command(_settings(), feeds, once)))


@feeds_app.command("import")
def feeds_import(
    opml: Annotated[Path, typer.Argument(help="An OPML file to merge into the feed list.")],
    feeds: FeedsOption = None,
) -> None:
    """Merge an OPML file into the YAML feed list."""
    from pipeline.sources.feeds import import_opml

    target = feeds or _settings().feeds_file
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

    settings = _settings()
    raise typer.Exit(feeds_export_command(feeds or settings.feeds_file, fmt, output))


@feeds_app.command("list")
def feeds_list(feeds: FeedsOption = None) -> None:
    """The feeds in the list, and the entries that are invalid (with why)."""
    from pipeline.sources.feeds import load_feeds

    path = feeds or _settings().feeds_file
    found = load_feeds(path)
    out.print(feeds_list_table(path, found.feeds))
    for error in found.errors:
        out.print(Text.assemble(("invalid", "red"), " ", str(error)))
    raise typer.Exit(1 if found.errors else 0)


def feeds_list_table(path: Path, feeds: Sequence[Any]) -> Table:
    """One row per feed of the list; names, URLs and tags are literal text."""
    table = Table(title=Text(f"{len(feeds)} feeds in {path}"))
    for column in ("name", "url", "tags", "interval", "enabled", "fulltext"):
        table.add_column(column)
    for feed in feeds:
        table.add_row(
            *_literal(
                feed.name or "",
                feed.url,
                ", ".join(feed.tags),
                f"{feed.interval:g}s" if feed.interval else "adaptive",
                "yes" if feed.enabled else "no",
                "yes" if feed.fulltext else "no",
            )
        )
    return table


@feeds_app.command("status")
def feeds_status(feeds: FeedsOption = None) -> None:
    """Last poll, HTTP status, new items, consecutive failures and next poll of each feed."""
    from pipeline.sources.status import read_feed_status

    rows = asyncio.run(read_feed_status(_settings(), feeds))
    out.print(feeds_status_table(rows))


def feeds_status_table(rows: Sequence[Any]) -> Table:
    """One row per feed's stored state; names, outcomes and errors are literal text."""
    table = Table(title="feeds status")
    for column in ("feed", "last poll", "HTTP", "outcome", "new", "failures", "next poll", "error"):
        table.add_column(column)

    def fmt(when: datetime | None) -> str:
        return when.strftime("%Y-%m-%d %H:%M:%S") if when else "-"

    for row in rows:
        table.add_row(
            *_literal(
                row.name[:40], fmt(row.last_poll), row.http_status or "-", row.outcome or "-",
                row.new_items, row.consecutive_failures, fmt(row.next_poll),
                (row.last_error or "")[:60],
            )
        )  # fmt: skip
    return table


# -- dead letters -------------------------------------------------------------------------


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
        read_dead_letters_page(_settings(), limit=limit, cursor=cursor, since=started)
    )
    if as_json:
        _print_json(page.as_json())
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


def dlq_table(letters: Sequence[Any]) -> Table:
    """One row per dead letter; every cell is literal text (reasons quote feed text)."""
    table = Table(title=f"{len(letters)} dead letter(s)")
    for column in ("failed at", "stage", "partition:offset", "key", "reason"):
        table.add_column(column, overflow="fold")
    for letter in letters:
        table.add_row(
            *_literal(
                (letter.failed_at or "")[:19],
                letter.stage,
                f"{letter.partition}:{letter.offset}",
                letter.key or "",
                letter.reason,
            )
        )
    return table


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

    settings = _settings()
    letters = asyncio.run(read_dead_letters(settings, limit))
    if stage:
        letters = [letter for letter in letters if letter.stage == stage]
    sent, skipped = asyncio.run(replay_dead_letters(settings, letters))
    for letter in skipped:
        err.print(Text.assemble(("not replayable", "yellow"), f" {letter.key}: {letter.reason}"))
    err.print(f"{sent} record(s) sent back")


# -- search ------------------------------------------------------------------------------


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
    result = asyncio.run(run_search(_settings(), request))
    if as_json:
        _print_json(result.as_json())
        return
    for table in search_tables(result):
        out.print(table)


def search_tables(result: Any) -> list[Table]:
    """The hits table, then one table per facet; every cell from the index is literal
    text, and only the highlight's own ``**match**`` marks are styled."""
    table = Table(title=f"{result.total} article(s)", show_lines=False)
    for column in ("published", "title", "source", "lang", "topics", "people", "match"):
        table.add_column(column, overflow="fold")
    for hit in result.hits:
        highlight = hit.get("highlight") or {}
        fragments = highlight.get("body") or highlight.get("summary") or []
        table.add_row(
            *_literal(
                (hit.get("published_at") or "")[:10],
                hit.get("title") or "",
                (hit.get("source") or {}).get("name") or "",
                hit.get("language") or "",
                ", ".join(t["label"] for t in (hit.get("topics") or [])[:2]),
                ", ".join(((hit.get("entities") or {}).get("person") or [])[:4]),
            ),
            _emphasis(fragments[0]) if fragments else "",
        )
    tables = [table]
    for name, buckets in result.facets.items():
        facet_table = Table(title=Text(f"facet: {name}"))
        facet_table.add_column("value")
        facet_table.add_column("count", justify="right")
        for bucket in buckets:
            facet_table.add_row(*_literal(bucket["value"], bucket["count"]))
        tables.append(facet_table)
    return tables


def _emphasis(fragment: str) -> Text:
    """A highlight fragment with its ``**match**`` marks shown in bold, the rest literal."""
    text = Text()
    for index, piece in enumerate(re.split(r"\*\*(.+?)\*\*", fragment)):
        text.append(piece, style="bold" if index % 2 else None)
    return text


# -- main job ----------------------------------------------------------------------------


@app.command()
def run(
    keep_stack: Annotated[
        bool, typer.Option(help="Leave the local stack running after Ctrl-C.")
    ] = False,
) -> None:
    """The main job: local stack (if nothing is configured), setup, worker, poller, seeds."""
    from pipeline.runner import run_all

    raise typer.Exit(run_all(_settings(), console=err, keep_stack=keep_stack))


def _register_archive() -> None:
    from pipeline.cli_archive import register

    register(app, _settings, out, err, _print_json)


_register_archive()


def main() -> None:
    """Entry point: clear one-line errors for the errors we raise on purpose."""
    try:
        app()
    except NewswireError as exc:
        err.print(Text.assemble(("error:", "red"), f" {exc}"))
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
