"""The pipeline's stages as commands: setup, worker, replay, enrich, poll."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from pipeline.cli.app import FeedsOption, JsonOption, app, err, load_settings, out, print_json
from pipeline.cli.render import enrich_table


@app.command()
def setup(
    as_json: JsonOption = False,
    partitions: Annotated[
        int | None,
        typer.Option(
            "--partitions",
            min=1,
            help="Raise the article topics (raw, enriched, DLQ, copies) to N partitions; "
            "then set NEWSWIRE_TOPIC_PARTITIONS=N for the workers.",
        ),
    ] = None,
    poller_partitions: Annotated[
        int | None,
        typer.Option(
            "--poller-partitions",
            min=1,
            help="Raise the feeds and poller-state topics to N partitions and move the feeds' "
            "state (pollers stopped); then set NEWSWIRE_POLLER_PARTITIONS=N.",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Allow one replica on a multi-broker cluster, and a poller partition change "
            "while pollers run.",
        ),
    ] = False,
) -> None:
    """Create the Kafka topics, the index template and alias (and Kibana objects)."""
    from pipeline.provision import run_setup

    report = asyncio.run(
        run_setup(
            load_settings(),
            partitions=partitions,
            poller_partitions=poller_partitions,
            force=force,
        )
    )
    index = report.index
    growth = report.growth
    data = {
        "topics_created": report.topics_created,
        "topics_configured": report.topics_configured,
        "engine": index.engine if index else None,
        "engine_version": index.version if index else None,
        "analysis": index.variant if index else None,
        "alias": index.alias if index else None,
        "index_created": index.created_index if index else None,
        "mapping_added": index.mapping_added if index else {},
        "mapping_conflicts": index.mapping_conflicts if index else {},
        "rolled_over_to": index.rolled_over_to if index else None,
        "index_lifecycle": index.lifecycle if index else None,
        "kibana_objects": report.kibana_objects,
        "partitions_added": [
            {"topic": c.topic, "before": c.before, "after": c.after} for c in growth.changes
        ]
        if growth
        else [],
        "feed_states_moved": growth.state_moved if growth else 0,
        "warnings": report.warnings,
    }
    if as_json:
        print_json(data)
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

    settings = load_settings()
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

    settings = load_settings()
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
    recogniser: Annotated[
        str | None,
        typer.Option(
            "--recogniser",
            help="corenlp (the worker's; the default) or spacy (NEWSWIRE_NER_BACKEND).",
        ),
    ] = None,
    allow_fallback: Annotated[
        bool,
        typer.Option(
            "--allow-fallback",
            help="Use spaCy (with a warning) when CoreNLP cannot be had, instead of failing.",
        ),
    ] = False,
) -> None:
    """Enrich JSONL articles {id?, title?, summary?, body} from stdin without Kafka.

    Entities come from the worker's recogniser: the configured CoreNLP server, the local
    stack's, or one started for the run (Java needed) and stopped after. Each record names
    its recogniser."""
    from pipeline.cli.local import start_corenlp_for_run
    from pipeline.enrich.enricher import Enricher
    from pipeline.enrich.jsonl import enrich_jsonl
    from pipeline.enrich.recogniser import recogniser_for_run

    settings = load_settings()
    if recogniser is not None:
        if recogniser not in ("corenlp", "spacy"):
            raise typer.BadParameter("corenlp or spacy", param_hint="--recogniser")
        settings = settings.model_copy(update={"ner_backend": recogniser})

    def say(message: str) -> None:
        err.print(Text(message, style="bold yellow"))

    with recogniser_for_run(
        settings,
        start_local=lambda: start_corenlp_for_run(settings, "enrich"),
        allow_fallback=allow_fallback,
        say=say,
    ) as chosen:
        enricher = Enricher(recogniser=chosen, batch_size=settings.batch_size)
        if jsonl:
            enrich_jsonl(sys.stdin, sys.stdout, batch_size=settings.batch_size, enricher=enricher)
            return
        buffer = io.StringIO()
        enrich_jsonl(sys.stdin, buffer, batch_size=settings.batch_size, enricher=enricher)
    out.print(enrich_table([json.loads(line) for line in buffer.getvalue().splitlines()]))


@app.command()
def poll(
    once: Annotated[bool, typer.Option("--once", help="One poll cycle, then exit.")] = False,
    feeds: FeedsOption = None,
) -> None:
    """Run the feed poller: conditional GETs, backoff, per-host limits, state in Kafka."""
    from pipeline.sources.service import poll_command

    raise typer.Exit(asyncio.run(poll_command(load_settings(), feeds, once)))
