"""The search-index sink: installs the template and alias, writes batches exactly once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from pipeline.backoff import backoff_delay
from pipeline.errors import HandedBackError, RetryableError, SearchBackendError
from pipeline.metrics import INDEX_STALLED as STALLED
from pipeline.models import EnrichedArticle
from pipeline.sinks.backend import RefreshPolicy, SearchBackend
from pipeline.sinks.bulk import bulk_operations, classify_response, external_version
from pipeline.sinks.templates import AnalysisVariant, first_index, load_templates

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class IndexSetup:
    """What ``setup`` did to the search engine."""

    engine: str
    version: str
    variant: AnalysisVariant
    alias: str
    created_index: str | None


@dataclass
class WriteResult:
    """A batch's fate: acknowledged ids (new or already newer) and rejected documents."""

    indexed: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    rejected: list[tuple[EnrichedArticle, str]] = field(default_factory=list)
    retries: int = 0


async def install_index(backend: SearchBackend, alias: str) -> IndexSetup:
    """Component templates, index template, and the first index behind ``alias``."""
    info = await backend.info()
    version = str(info.get("version", {}).get("number", "?"))
    variant: AnalysisVariant = "english" if await backend.has_analyzer("english") else "standard"
    if variant == "standard":
        log.warning(
            "index.standard_analysis",
            reason="this node has no language analyzers (no analysis-common module); "
            "text fields use the standard analyzer, without stemming",
        )
    templates = load_templates(variant)
    for name, body in templates.components.items():
        await backend.put_component_template(name, body)
    # The template file is written for the default alias; follow the configured one.
    index_template = {**templates.index_template, "index_patterns": [f"{alias}-*"]}
    await backend.put_index_template(alias, index_template)
    created = None
    if await backend.alias_exists(alias):
        # Rolling upgrades: fields this version added reach the indices already behind the
        # alias (new fields only; a changed field type is refused by the engine).
        await backend.put_mapping(alias, {"properties": templates.mappings["properties"]})
    else:
        created = first_index(alias)
        try:
            await backend.create_index(created, {"aliases": {alias: {"is_write_index": True}}})
        except SearchBackendError as exc:
            if "resource_already_exists" not in str(exc):
                raise
            created = None  # another worker or setup created it a moment ago
    log.info("index.ready", engine=backend.engine, alias=alias, variant=variant, created=created)
    return IndexSetup(backend.engine, version, variant, alias, created)


class Indexer:
    """Bulk writes with deterministic ``_id`` and external versions; never drops retryables."""

    def __init__(
        self,
        backend: SearchBackend,
        alias: str,
        *,
        backoff_base: float = 0.5,
        backoff_cap: float = 60.0,
        escalate_after: int = 8,
        stopping: asyncio.Event | None = None,
        refresh: RefreshPolicy = "false",
    ) -> None:
        self.backend = backend
        self.alias = alias
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.escalate_after = escalate_after
        self.refresh: RefreshPolicy = refresh
        #: Set when the worker stops: a batch still waiting is handed back, not acked.
        self.stopping = stopping or asyncio.Event()
        self._waiting_since: float | None = None

    async def write(self, articles: Sequence[EnrichedArticle]) -> WriteResult:
        """Index ``articles``; returns only when every one is acknowledged or rejected."""
        result = WriteResult()
        pending: dict[str, EnrichedArticle] = {}
        for article in articles:  # the last revision of an id in a batch wins
            known = pending.get(article.id)
            if known is None or external_version(article) >= external_version(known):
                pending[article.id] = article
        attempt = 0
        while pending:
            try:
                response = await self.backend.bulk(
                    self._operations(pending.values()), refresh=self.refresh
                )
            except RetryableError as exc:
                attempt = await self._wait(attempt, str(exc), len(pending), exc.retry_after)
                result.retries += 1
                continue
            report = classify_response(response)
            result.indexed += report.indexed
            result.stale += report.stale
            for item in report.rejected:
                article = pending[item.doc_id]
                result.rejected.append((article, f"{item.status} {item.reason}"))
            done = set(report.indexed) | set(report.stale) | {r.doc_id for r in report.rejected}
            pending = {k: v for k, v in pending.items() if k not in done}
            if pending:
                reason = report.retry[0].reason if report.retry else "no answer for some items"
                attempt = await self._wait(attempt, str(reason), len(pending))
                result.retries += 1
        if attempt:
            waited = time.monotonic() - (self._waiting_since or time.monotonic())
            log.info(
                "sink.recovered", attempts=attempt, docs=len(articles), waited_s=round(waited, 1)
            )
        self._waiting_since = None
        STALLED.set(0)
        return result

    async def _wait(
        self, attempt: int, reason: str, docs: int, retry_after: float | None = None
    ) -> int:
        """Back off before the next try, forever: retryable failures are never dropped nor
        acknowledged (the worker holds their offsets meanwhile). One warning when the wait
        starts, one error when it passes ``escalate_after`` tries, one line when it is over
        (``sink.recovered``); the tries between are logged at debug level, so an outage of
        hours does not flood the log. A stop request ends the wait: the batch is handed
        back (:class:`HandedBackError`), unacknowledged."""
        attempt += 1
        delay = retry_after or backoff_delay(attempt, self.backoff_base, self.backoff_cap)
        if self._waiting_since is None:
            self._waiting_since = time.monotonic()
        fields = {"attempt": attempt, "docs": docs, "reason": reason, "delay": delay}
        if attempt == 1:
            log.warning("sink.retry", **fields)
        elif attempt == self.escalate_after:
            log.error("sink.stalled", **fields)
        else:
            log.debug("sink.retry", **fields)
        if attempt >= self.escalate_after:
            STALLED.set(1)
        try:
            await asyncio.wait_for(self.stopping.wait(), delay)
        except TimeoutError:
            return attempt
        raise HandedBackError("sink", f"the search engine ({reason})")

    def _operations(self, articles: Any) -> list[dict[str, Any]]:
        return bulk_operations(
            self.alias,
            [(a.id, external_version(a), a.document()) for a in articles],
        )
