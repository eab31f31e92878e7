"""The search-index sink: installs the template and alias, writes batches exactly once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from pipeline.backoff import backoff_delay
from pipeline.errors import ConfigError, HandedBackError, RetryableError, SearchBackendError
from pipeline.metrics import INDEX_STALLED as STALLED
from pipeline.models import EnrichedArticle
from pipeline.settings import Settings
from pipeline.sinks.backend import RefreshPolicy, SearchBackend
from pipeline.sinks.bulk import bulk_operations, classify_response, external_version
from pipeline.sinks.generations import (
    index_settings,
    locate,
    previous_generation,
    rollover,
    rollover_conditions,
    window_duplicates,
)
from pipeline.sinks.lifecycle import (
    Lifecycle,
    detect,
    install_policy,
    lifecycle_settings,
    with_lifecycle,
)
from pipeline.sinks.mappings import MappingChanges, evolve_mappings, unmapped_fields
from pipeline.sinks.templates import AnalysisVariant, first_index, load_templates, templates_dir

log = structlog.get_logger(__name__)

#: Seconds after a change of write index during which the ids a bulk created are looked up
#: in the generation before (its writes become searchable within one refresh, 1 s by
#: default; a search-idle shard refreshes at the lookup's search).
ROLLOVER_WINDOW_S = 30.0


@dataclass(frozen=True)
class IndexSetup:
    """What ``setup`` did to the search engine."""

    engine: str
    version: str
    variant: AnalysisVariant
    alias: str
    created_index: str | None
    #: Fields added in place to live generations (index -> dotted paths).
    mapping_added: dict[str, list[str]] = field(default_factory=dict)
    #: Changes the live generations could not take (index -> what changed).
    mapping_conflicts: dict[str, list[str]] = field(default_factory=dict)
    #: The generation a conflicting change of the write index rolled over to.
    rolled_over_to: str | None = None
    #: Who rolls over and retires: ``ilm`` (the cluster's policy) or ``core`` (Newswire).
    lifecycle: str = "core"


@dataclass
class WriteResult:
    """A batch's fate: acknowledged ids (new or already newer) and rejected documents."""

    indexed: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    rejected: list[tuple[EnrichedArticle, str]] = field(default_factory=list)
    retries: int = 0


async def install_index(
    backend: SearchBackend, alias: str, settings: Settings | None = None
) -> IndexSetup:
    """Component templates, index template, and the first index behind ``alias``; with
    ``settings``, new generations get its shard and replica counts."""
    info = await backend.info()
    version = str(info.get("version", {}).get("number", "?"))
    # Asked of the existing alias when there is one: the worker's least-privilege user may
    # analyze there (manage on the alias) but not on the cluster; the first setup asks the
    # cluster.
    exists = await backend.alias_exists(alias)
    english = await backend.has_analyzer("english", alias if exists else None)
    variant: AnalysisVariant = "english" if english else "standard"
    if variant == "standard":
        log.warning(
            "index.standard_analysis",
            reason="this node has no language analyzers (no analysis-common module); "
            "text fields use the standard analyzer, without stemming",
        )
    templates = load_templates(variant)
    unmapped = unmapped_fields(EnrichedArticle, templates.mappings)
    if unmapped:
        raise ConfigError(
            f"the index mapping (component-mappings.json in {templates_dir()}) does not "
            f"declare {unmapped}, which this version's articles carry: a strict index would "
            "refuse every article. Add them to the mapping (or point NEWSWIRE_TEMPLATES_DIR "
            "at this release's templates) and run setup again"
        )
    for name, body in templates.components.items():
        if name == "newswire-settings" and settings is not None:
            body = index_settings(settings, body)
        await backend.put_component_template(name, body)
    lifecycle = Lifecycle("core")
    if settings is not None:
        lifecycle = await detect(backend, settings)
        if lifecycle.manager == "ilm":
            await install_policy(backend, settings, rollover_conditions(settings))
    # The template file is written for the default alias; follow the configured one.
    index_template = {**templates.index_template, "index_patterns": [f"{alias}-*"]}
    if lifecycle.manager == "ilm":
        index_template = with_lifecycle(index_template, alias)
    await backend.put_index_template(alias, index_template)
    created = None
    changes = MappingChanges()
    rolled_to = None
    if await backend.alias_exists(alias):
        changes = await evolve_mappings(backend, alias, templates.mappings)
        writes = await backend.alias_indices(alias)
        if any(writes.get(index) for index in changes.conflicts):
            # The write index cannot take the new mapping: new articles go to a new
            # generation made from the new template; the old ones need `reprocess --relocate`.
            rolled = await rollover(backend, alias, {}, force=True)
            rolled_to = rolled.new_index
        for index, what in changes.conflicts.items():
            log.warning(
                "index.mapping_not_in_place",
                index=index,
                changes=what,
                remedy="newswire reprocess --relocate moves its articles to the write index",
            )
    else:
        created = first_index(alias)
        try:
            await backend.create_index(created, {"aliases": {alias: {"is_write_index": True}}})
        except SearchBackendError as exc:
            if "resource_already_exists" not in str(exc):
                raise
            created = None  # another worker or setup created it a moment ago
    if lifecycle.manager == "ilm" and created is None:
        # The live write index was made before ILM was found: hand it to the policy too
        # (older generations stay with `index retire`: ILM's rollover step refuses an index
        # that is no longer the write index).
        await backend.put_index_settings(
            await backend.write_index(alias), lifecycle_settings(alias)
        )
    log.info(
        "index.ready",
        engine=backend.engine,
        alias=alias,
        variant=variant,
        created=created,
        lifecycle=lifecycle.manager,
    )
    return IndexSetup(
        backend.engine,
        version,
        variant,
        alias,
        created,
        changes.added,
        changes.conflicts,
        rolled_to,
        lifecycle.manager,
    )


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
        rollover_conditions: dict[str, Any] | None = None,
        rollover_every: float = 0.0,
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
        #: The worker's own rollover check (``NEWSWIRE_INDEX_ROLLOVER_*``); off when empty.
        self.rollover_conditions = rollover_conditions or {}
        self.rollover_every = rollover_every
        self._next_rollover_check = time.monotonic() + rollover_every
        #: The write index this indexer's new documents went to last (see _close_window).
        self._write_index: str | None = None
        self._previous: str | None = None
        self._window_ends = 0.0

    async def write(
        self, articles: Sequence[EnrichedArticle], *, relocate: bool = False
    ) -> WriteResult:
        """Index ``articles``; returns only when every one is acknowledged or rejected.

        Each goes to the generation that holds its id, else to the write index. With
        ``relocate`` (``reprocess --relocate``, after a mapping change that could not
        apply in place) each goes to the write index and is then deleted from the older
        generation that held it; while both copies exist, :func:`locate` picks the newer
        generation, so a revision written meanwhile lands in the new copy."""
        result = WriteResult()
        pending: dict[str, EnrichedArticle] = {}
        for article in articles:  # the last revision of an id in a batch wins
            known = pending.get(article.id)
            if known is None or external_version(article) >= external_version(known):
                pending[article.id] = article
        attempt = 0
        origin = await self._origin(list(pending)) if relocate else {}
        written_to: dict[str, str] = {}
        fresh: dict[str, str] = {}  # ids the lookup did not find -> where they went
        while pending:
            try:
                placed = {} if relocate else await locate(self.backend, self.alias, list(pending))
                response = await self.backend.bulk(
                    self._operations(pending.values(), placed), refresh=self.refresh
                )
            except RetryableError as exc:
                attempt = await self._wait(attempt, str(exc), len(pending), exc.retry_after)
                result.retries += 1
                continue
            report = classify_response(response)
            result.indexed += report.indexed
            result.stale += report.stale
            written_to.update(report.written_to)
            if not relocate:
                fresh.update({k: v for k, v in report.written_to.items() if k not in placed})
            for item in report.rejected:
                article = pending[item.doc_id]
                result.rejected.append((article, f"{item.status} {item.reason}"))
            done = set(report.indexed) | set(report.stale) | {r.doc_id for r in report.rejected}
            pending = {k: v for k, v in pending.items() if k not in done}
            if pending:
                reason = report.retry[0].reason if report.retry else "no answer for some items"
                attempt = await self._wait(attempt, str(reason), len(pending))
                result.retries += 1
        if origin:
            await self._delete_moved(origin, written_to)
        await self._close_window(fresh)
        if attempt:
            waited = time.monotonic() - (self._waiting_since or time.monotonic())
            log.info(
                "sink.recovered", attempts=attempt, docs=len(articles), waited_s=round(waited, 1)
            )
        self._waiting_since = None
        STALLED.set(0)
        await self._maybe_roll_over()
        return result

    async def _close_window(self, fresh: dict[str, str]) -> None:
        """Undo the one duplicate a rollover can make (docs/architecture.md, generations).

        The lookup before a bulk is a search: it cannot see a document written to the old
        write index after that index's last refresh. A revision of such an article arriving
        just after a rollover goes to the new write index beside it. So when this
        indexer's new documents land in another write index than its previous ones (a
        rollover happened between; on its first bulk, the generation before), the ids it
        just created are looked up with a realtime ``mget`` in the generation before, for
        ``ROLLOVER_WINDOW_S`` (several refresh intervals), and of an id found in both the
        older copy is deleted. Costs nothing between rollovers."""
        if not fresh:
            return
        current = max(fresh.values())
        if current != self._write_index:  # a rollover since the last bulk, or the first
            self._previous = self._write_index or previous_generation(current)
            self._window_ends = time.monotonic() + ROLLOVER_WINDOW_S
            self._write_index = current
        previous = self._previous
        if previous is None or previous >= current or time.monotonic() > self._window_ends:
            return
        ids = sorted(doc_id for doc_id, index in fresh.items() if index == current)
        try:
            old = await self.backend.mget(previous, ids)
            deletes = (
                window_duplicates(old, await self.backend.mget(current, ids))
                if any(d.get("found") for d in old)
                else []
            )
            if deletes:
                await self.backend.bulk(deletes, refresh=self.refresh)
        except SearchBackendError as exc:  # an old generation retired meanwhile, an outage
            gone = "index_not_found" in str(exc)
            (log.debug if gone else log.warning)(
                "index.rollover_window_unchecked", previous=previous, error=str(exc)
            )
            return
        if deletes:
            log.warning(
                "index.rollover_window_duplicate_removed",
                previous=previous,
                current=current,
                ids=[d["delete"]["_id"] for d in deletes][:20],
            )

    async def _origin(self, ids: list[str]) -> dict[str, str]:
        """Where ``ids`` live before a relocation (retried like a bulk request)."""
        attempt = 0
        while True:
            try:
                return await locate(self.backend, self.alias, ids)
            except RetryableError as exc:
                attempt = await self._wait(attempt, str(exc), len(ids), exc.retry_after)

    async def _delete_moved(self, origin: dict[str, str], written_to: dict[str, str]) -> None:
        """Delete the old copies of relocated documents (a 404 means already gone)."""
        moved = [
            (doc_id, old)
            for doc_id, old in origin.items()
            if doc_id in written_to and written_to[doc_id] != old
        ]
        attempt = 0
        while moved:
            try:
                await self.backend.bulk(
                    [{"delete": {"_index": old, "_id": doc_id}} for doc_id, old in moved],
                    refresh=self.refresh,
                )
                return
            except RetryableError as exc:
                attempt = await self._wait(attempt, str(exc), len(moved), exc.retry_after)

    async def _maybe_roll_over(self) -> None:
        """Every ``rollover_every`` seconds, roll the alias over if a limit is met (the
        core API; where the cluster has ILM, set the check to 0 and let ILM do it). A
        failure is logged and tried again at the next check: it never fails a batch."""
        if not self.rollover_every or not self.rollover_conditions:
            return
        now = time.monotonic()
        if now < self._next_rollover_check:
            return
        self._next_rollover_check = now + self.rollover_every
        try:
            await rollover(self.backend, self.alias, self.rollover_conditions)
        except SearchBackendError as exc:
            log.warning("index.rollover_failed", alias=self.alias, error=str(exc))

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

    def _operations(self, articles: Any, placed: dict[str, str]) -> list[dict[str, Any]]:
        return bulk_operations(
            self.alias,
            [(a.id, external_version(a), a.document()) for a in articles],
            placed,
        )
