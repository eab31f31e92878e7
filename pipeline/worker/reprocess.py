"""``newswire reprocess``: re-enrich indexed articles with the current recogniser and rules.

Reads the stored articles with a point in time and ``search_after``
(:mod:`pipeline.search.scan`), enriches them again in the NLP threads, and writes them
through the sink's :class:`~pipeline.sinks.indexer.Indexer`, while live ingest goes on:

- Versions. A reprocessed article keeps its revision's external version (``fetched_at``
  in ms) and is written with ``external_gte``: it replaces the same revision's older
  enrichment, and a newer revision written by live ingest meanwhile wins (409, counted as
  ``newer``). No article is added, none lost; ``cluster_id`` is kept (story clusters are
  the stream's, not re-derived).
- Resuming. After each page is acknowledged, the position (the last ``id``) is saved in a
  checkpoint file; a run with the same selection starts after it. ``--stale`` selects the
  articles whose ``enrichment_version`` is not the current one, so it converges anyway.
- Poison. A record whose enrichment raises is isolated (:mod:`pipeline.worker.poison`),
  reported with its traceback, and skipped; the rest of its page goes on.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import structlog

from pipeline import PIPELINE_VERSION
from pipeline.backoff import backoff_delay
from pipeline.errors import ConfigError, HandedBackError, RetryableError
from pipeline.models import EnrichedArticle, Enrichment, RawArticle, utcnow
from pipeline.search.scan import article_query, scan
from pipeline.sinks.backend import SearchBackend
from pipeline.sinks.indexer import Indexer
from pipeline.worker.poison import isolate

log = structlog.get_logger(__name__)

#: Articles read, enriched and written per step.
PAGE_SIZE = 256
#: Parts a page is cut into per NLP thread (as the worker does).
PARTS_PER_THREAD = 4


@dataclass(frozen=True)
class Selection:
    """Which articles to reprocess (``newswire search``'s query syntax and filters)."""

    query: str = ""
    filters: tuple[str, ...] = ()
    since: str | None = None
    until: str | None = None
    stale: bool = False
    relocate: bool = False
    #: False: write the stored articles as they are (``--relocate`` after a mapping
    #: change needs no new enrichment; much faster).
    reenrich: bool = True

    def key(self, version: str) -> str:
        """Identifies the run for its checkpoint: the same selection and target version."""
        text = json.dumps([asdict(self), version], sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def body(self, version: str) -> dict[str, Any]:
        extra = [{"bool": {"must_not": [{"term": {"enrichment_version": version}}]}}]
        return article_query(
            self.query, self.filters, self.since, self.until, extra if self.stale else ()
        )


@dataclass
class Checkpoint:
    """Where a run is: saved after every acknowledged page."""

    key: str
    after: list[Any] | None = None
    done: int = 0

    @classmethod
    def load(cls, path: Path, key: str) -> Checkpoint:
        """The saved position of the same run, else a fresh start."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(key)
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read the checkpoint {path}: {exc}") from exc
        if data.get("key") != key:
            log.info("reprocess.checkpoint_other_run", path=str(path), starting="afresh")
            return cls(key)
        return cls(key, data.get("after"), int(data.get("done", 0)))

    def save(self, path: Path) -> None:
        """Write atomically (a crash leaves the previous checkpoint)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)), encoding="utf-8")
        tmp.replace(path)


@dataclass
class ReprocessReport:
    """What a run did."""

    version: str
    selected: int
    done: int = 0
    rewritten: int = 0
    newer: int = 0  # a newer revision was indexed meanwhile: kept
    rejected: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # id, traceback
    resumed_from: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return (self.done - self.resumed_from) / self.seconds if self.seconds else 0.0


def raw_from_source(source: dict[str, Any]) -> RawArticle:
    """The raw article inside a stored document (its enrichment dropped)."""
    return RawArticle.model_validate(
        {k: v for k, v in source.items() if k in RawArticle.model_fields}
    )


def split(items: Sequence[Any], parts: int) -> list[list[Any]]:
    """``items`` in at most ``parts`` contiguous, near-equal, non-empty runs."""
    count = max(1, min(parts, len(items)))
    size, extra = divmod(len(items), count)
    out, start = [], 0
    for n in range(count):
        end = start + size + (1 if n < extra else 0)
        out.append(list(items[start:end]))
        start = end
    return [part for part in out if part]


class Reprocessor:
    """One reprocess run: scan, enrich, write, checkpoint."""

    def __init__(
        self,
        backend: SearchBackend,
        alias: str,
        enricher: Any,
        *,
        threads: int = 2,
        page_size: int = PAGE_SIZE,
        checkpoint: Path | None = None,
        progress: Callable[[ReprocessReport], None] | None = None,
        retries: int = 1,
    ) -> None:
        self.backend = backend
        self.alias = alias
        self.enricher = enricher
        self.threads = threads
        self.page_size = page_size
        self.checkpoint_path = checkpoint
        self.progress = progress
        self.retries = retries
        self.indexer = Indexer(backend, alias, refresh="true")
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="reprocess")

    async def run(self, selection: Selection) -> ReprocessReport:
        version = self.enricher.version
        key = selection.key(version)
        point = Checkpoint(key)
        if self.checkpoint_path is not None:
            point = Checkpoint.load(self.checkpoint_path, key)
        query = selection.body(version)
        selected = await self.backend.count(self.alias, {"query": query})
        # --stale counts only what is left; a plain selection counts what was done too.
        total = selected + point.done if selection.stale else selected
        report = ReprocessReport(version, total, point.done, resumed_from=point.done)
        if point.after is not None:
            log.info("reprocess.resuming", after=point.after, done=point.done)
        started = time.monotonic()
        try:
            async for page in scan(
                self.backend, self.alias, query, after=point.after, size=self.page_size
            ):
                if selection.reenrich:
                    await self._page(page.hits, version, selection.relocate, report)
                else:
                    await self._copy(page.hits, selection.relocate, report)
                point.after, point.done = page.after, report.done
                if self.checkpoint_path is not None:
                    point.save(self.checkpoint_path)
                report.seconds = time.monotonic() - started
                if self.progress is not None:
                    self.progress(report)
        finally:
            self.executor.shutdown(wait=False, cancel_futures=True)
        report.seconds = time.monotonic() - started
        log.info(
            "reprocess.done",
            version=version,
            done=report.done,
            rewritten=report.rewritten,
            newer=report.newer,
            failed=len(report.failed),
            rate=round(report.rate, 1),
        )
        return report

    async def _page(
        self, hits: list[dict[str, Any]], version: str, relocate: bool, report: ReprocessReport
    ) -> None:
        sources = [hit["_source"] for hit in hits]
        raws = [raw_from_source(source) for source in sources]
        outcome = await isolate(
            raws, self._enrich_until_done, retries=self.retries, passthrough=(HandedBackError,)
        )
        clusters = {source["id"]: source.get("cluster_id") for source in sources}
        now = utcnow()
        articles = [
            EnrichedArticle(
                **raw.model_dump(),
                **enrichment.model_dump(),
                cluster_id=clusters.get(raw.id),
                enriched_at=now,
                pipeline_version=PIPELINE_VERSION,
                enrichment_version=version,
            )
            for raw, enrichment in outcome.done
        ]
        for raw, trace in outcome.poison:
            log.error("reprocess.record_failed", id=raw.id, error=trace.splitlines()[-1])
            report.failed.append((raw.id, trace))
        result = await self.indexer.write(articles, relocate=relocate)
        report.rewritten += len(result.indexed)
        report.newer += len(result.stale)
        report.rejected += [(a.id, reason) for a, reason in result.rejected]
        report.done += len(hits)

    async def _copy(
        self, hits: list[dict[str, Any]], relocate: bool, report: ReprocessReport
    ) -> None:
        """Write the stored articles unchanged (their enrichment and its version kept)."""
        articles = [EnrichedArticle.model_validate(hit["_source"]) for hit in hits]
        result = await self.indexer.write(articles, relocate=relocate)
        report.rewritten += len(result.indexed)
        report.newer += len(result.stale)
        report.rejected += [(a.id, reason) for a, reason in result.rejected]
        report.done += len(hits)

    async def _enrich_until_done(self, articles: Sequence[RawArticle]) -> list[Enrichment]:
        """Enrich in the threads; while the recogniser is unavailable, wait and retry."""
        failures = 0
        while True:
            try:
                return await self._enrich_parts(articles)
            except RetryableError as exc:
                failures += 1
                delay = backoff_delay(failures, 1.0, 60.0)
                log.warning("reprocess.recogniser_unavailable", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)

    async def _enrich_parts(self, articles: Sequence[RawArticle]) -> list[Enrichment]:
        loop = asyncio.get_running_loop()
        parts = split(articles, self.threads * PARTS_PER_THREAD if self.threads > 1 else 1)
        results = await asyncio.gather(
            *(loop.run_in_executor(self.executor, self.enricher.enrich, part) for part in parts)
        )
        return [enrichment for part in results for enrichment in part]


__all__ = [
    "Checkpoint",
    "ReprocessReport",
    "Reprocessor",
    "Selection",
    "raw_from_source",
    "split",
]
