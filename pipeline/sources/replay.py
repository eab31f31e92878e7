"""``newswire replay``: publish seed files as raw articles, with a progress bar."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import structlog
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipeline.kafka.client import bootstrap, make_producer, publish_raw, start_client
from pipeline.models import RawArticle
from pipeline.settings import Settings
from pipeline.sources.seeds import SeedError, discover, read_file

log = structlog.get_logger(__name__)


@dataclass
class ReplayReport:
    """How a replay went: files read, articles published, and every file that failed."""

    files: int = 0
    articles: int = 0
    errors: list[SeedError] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)


def collect(paths: Sequence[Path], settings: Settings, report: ReplayReport) -> list[RawArticle]:
    """Read every file; errors are recorded by name and reason, the rest go on."""
    files, errors = discover(paths)
    report.errors.extend(errors)
    articles: list[RawArticle] = []
    for path, source_name in files:
        report.files += 1
        for item in read_file(path, source_name, settings.max_body_chars):
            if isinstance(item, SeedError):
                report.errors.append(item)
                log.error(
                    "replay.bad_file", file=str(item.path), line=item.line, reason=item.reason
                )
            else:
                articles.append(item)
    return articles


def dry_run(paths: Sequence[Path], settings: Settings, out: TextIO = sys.stdout) -> ReplayReport:
    """Print the raw articles as JSONL instead of publishing them."""
    report = ReplayReport()
    for article in collect(paths, settings, report):
        out.write(article.model_dump_json() + "\n")
        report.articles += 1
    return report


async def replay(
    paths: Sequence[Path],
    settings: Settings,
    *,
    console: Console | None = None,
    batch: int = 200,
) -> ReplayReport:
    """Publish the articles of ``paths`` to the raw topic; returns after Kafka acked all."""
    report = ReplayReport()
    articles = collect(paths, settings, report)
    report.ids = [a.id for a in articles]
    producer = make_producer(settings)
    await start_client(producer, bootstrap(settings))
    try:
        with Progress(
            TextColumn("[bold]replay"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console or Console(stderr=True),
            transient=False,
            disable=not articles,
        ) as progress:
            task = progress.add_task("replay", total=len(articles))
            for start in range(0, len(articles), batch):
                chunk = articles[start : start + batch]
                report.articles += await publish_raw(producer, settings.topic_raw, chunk)
                progress.advance(task, len(chunk))
    finally:
        await producer.stop()
    log.info("replay.done", files=report.files, articles=report.articles, errors=len(report.errors))
    return report
