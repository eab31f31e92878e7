"""The archive's operations as the CLI runs them (``newswire index / export / reprocess /
snapshot``): each opens the configured search engine, does one thing, and closes it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.settings import Settings
from pipeline.sinks.backend import SearchBackend
from pipeline.sinks.engines import open_backend
from pipeline.sinks.generations import (
    Generation,
    RolloverResult,
    list_generations,
    retire,
    rollover,
    rollover_conditions,
)
from pipeline.sinks.lifecycle import detect
from pipeline.sinks.snapshots import (
    SnapshotInfo,
    create_snapshot,
    list_snapshots,
    restore_snapshot,
)


async def index_list(settings: Settings) -> list[Generation]:
    backend = open_backend(settings)
    try:
        return await list_generations(backend, settings.index_alias, newest_fetched=True)
    finally:
        await backend.close()


async def _refuse_under_ilm(backend: SearchBackend, settings: Settings, what: str) -> None:
    """Stand down where the cluster's ILM manages the alias: the two must never both act."""
    refusal = (await detect(backend, settings)).refusal(what)
    if refusal:
        raise ConfigError(refusal)


async def index_rollover(settings: Settings, *, now: bool, dry_run: bool) -> RolloverResult:
    backend = open_backend(settings)
    try:
        await _refuse_under_ilm(backend, settings, "rollover")
        return await rollover(
            backend,
            settings.index_alias,
            rollover_conditions(settings),
            force=now,
            dry_run=dry_run,
        )
    finally:
        await backend.close()


async def index_retire(settings: Settings, *, dry_run: bool, empty: bool) -> list[Generation]:
    if settings.index_retention_days is None and not empty:
        raise ConfigError(
            "NEWSWIRE_INDEX_RETENTION_DAYS is not set: nothing is retired (keep everything); "
            "--empty deletes the empty old generations only"
        )
    backend = open_backend(settings)
    try:
        retention = settings.index_retention_days
        if retention is not None and (await detect(backend, settings)).manager == "ilm":
            if not empty:
                await _refuse_under_ilm(backend, settings, "deletion past retention")
            retention = None  # ILM's delete phase does that; --empty still cleans up
        return await retire(
            backend,
            settings.index_alias,
            retention,
            dry_run=dry_run,
            empty=empty,
        )
    finally:
        await backend.close()


async def run_export(
    settings: Settings,
    query: dict[str, Any],
    out: Any,
    *,
    fmt: str,
    fields: Sequence[str] | None,
    progress: Callable[[int, int], None],
) -> Any:
    from pipeline.search.export import export

    if fmt not in ("jsonl", "csv"):
        raise ConfigError(f"--format {fmt!r}: jsonl or csv")
    backend = open_backend(settings)
    try:
        return await export(
            backend,
            settings.index_alias,
            query,
            out,
            fmt="csv" if fmt == "csv" else "jsonl",
            fields=fields,
            progress=progress,
        )
    finally:
        await backend.close()


def default_checkpoint(settings: Settings, key: str) -> Path:
    """Where a reprocess run keeps its position unless told: under NEWSWIRE_HOME."""
    return settings.home / "reprocess" / f"{settings.index_alias}-{key}.json"


async def run_reprocess(
    settings: Settings,
    selection: Any,
    *,
    checkpoint: Path | None,
    progress: Callable[[Any], None],
) -> Any:
    from pipeline.enrich.enricher import Enricher
    from pipeline.enrich.recogniser import make_recogniser
    from pipeline.worker.reprocess import Reprocessor

    enricher = Enricher(recogniser=make_recogniser(settings))
    path = checkpoint or default_checkpoint(settings, selection.key(enricher.version))
    backend = open_backend(settings)
    try:
        report = await Reprocessor(
            backend,
            settings.index_alias,
            enricher,
            threads=settings.nlp_threads,
            checkpoint=path,
            progress=progress,
            retries=settings.batch_failure_retries,
        ).run(selection)
    finally:
        await backend.close()
    path.unlink(missing_ok=True)  # finished: a next run starts afresh
    return report


async def snapshot_create(settings: Settings, name: str | None) -> SnapshotInfo:
    backend = open_backend(settings)
    try:
        return await create_snapshot(backend, settings, name)
    finally:
        await backend.close()


async def snapshot_list(settings: Settings) -> list[SnapshotInfo]:
    backend = open_backend(settings)
    try:
        return await list_snapshots(backend, settings)
    finally:
        await backend.close()


async def snapshot_restore(settings: Settings, name: str, *, replace: bool) -> list[str]:
    backend = open_backend(settings)
    try:
        return await restore_snapshot(backend, settings, name, replace=replace)
    finally:
        await backend.close()


__all__ = [
    "default_checkpoint",
    "index_list",
    "index_retire",
    "index_rollover",
    "run_export",
    "run_reprocess",
    "snapshot_create",
    "snapshot_list",
    "snapshot_restore",
]
