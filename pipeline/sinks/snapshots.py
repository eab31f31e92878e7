"""Snapshots of the article generations to a filesystem repository (``newswire snapshot``).

A snapshot holds every generation behind the alias (``<alias>-*``) with the alias itself,
not the cluster's global state. Restore brings them back with their alias; it refuses to
overwrite live indices of the same names unless told to delete them first (``replace``),
since a restore over a live index would silently lose what was written since.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from pipeline.errors import ConfigError
from pipeline.settings import Settings
from pipeline.sinks.backend import SearchBackend

log = structlog.get_logger(__name__)


def snapshot_name(now: datetime | None = None) -> str:
    """``newswire-20261203t132400z``: snapshot names must be lower case."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dt%H%M%Sz")
    return f"newswire-{stamp}"


def pattern(alias: str) -> str:
    """The generations' index pattern."""
    return f"{alias}-*"


@dataclass(frozen=True)
class SnapshotInfo:
    """One snapshot of the repository."""

    name: str
    state: str
    indices: list[str]
    started: str | None
    shards_failed: int

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "indices": self.indices,
            "started": self.started,
            "shards_failed": self.shards_failed,
        }


def _info(raw: dict[str, Any]) -> SnapshotInfo:
    return SnapshotInfo(
        name=str(raw.get("snapshot")),
        state=str(raw.get("state")),
        indices=sorted(raw.get("indices", [])),
        started=raw.get("start_time"),
        shards_failed=int(raw.get("shards", {}).get("failed", 0)),
    )


async def ensure_repository(backend: SearchBackend, settings: Settings) -> str:
    """Register the filesystem repository (idempotent); its name."""
    if not settings.snapshot_location:
        raise ConfigError(
            "no snapshot repository folder: set NEWSWIRE_SNAPSHOT_LOCATION to a folder under "
            "the search nodes' path.repo"
        )
    await backend.snapshot_repository(settings.snapshot_repository, settings.snapshot_location)
    return settings.snapshot_repository


async def create_snapshot(
    backend: SearchBackend, settings: Settings, name: str | None = None
) -> SnapshotInfo:
    """Snapshot every generation (waits for completion)."""
    repository = await ensure_repository(backend, settings)
    answer = await backend.create_snapshot(
        repository, name or snapshot_name(), pattern(settings.index_alias)
    )
    info = _info(answer.get("snapshot", answer))
    log.info("snapshot.created", name=info.name, indices=len(info.indices), state=info.state)
    return info


async def list_snapshots(backend: SearchBackend, settings: Settings) -> list[SnapshotInfo]:
    repository = await ensure_repository(backend, settings)
    return [_info(raw) for raw in await backend.list_snapshots(repository)]


async def restore_snapshot(
    backend: SearchBackend, settings: Settings, name: str, *, replace: bool = False
) -> list[str]:
    """Restore the generations of snapshot ``name`` with their alias; returns them.

    Live indices of the same names are refused unless ``replace``: then every live
    generation is deleted first, so the alias has one write index after the restore."""
    repository = await ensure_repository(backend, settings)
    known = {s.name: s for s in await list_snapshots(backend, settings)}
    if name not in known:
        raise ConfigError(f"no snapshot {name!r} in {repository}; known: {sorted(known)}")
    indices = known[name].indices
    live = set(await backend.alias_indices(settings.index_alias))
    clash = sorted(live & set(indices))
    if clash and not replace:
        raise ConfigError(
            f"{len(clash)} indices of the snapshot are live ({', '.join(clash[:3])}): restore "
            "with --replace to delete every live generation first (what was written since "
            "the snapshot is lost: replay it from the topics' retention)"
        )
    doomed = sorted(live) if replace else []  # all of them: one write index after restore
    for index in doomed:
        await backend.delete_index(index)
    await backend.restore_snapshot(
        repository,
        name,
        {"indices": ",".join(indices), "include_aliases": True, "include_global_state": False},
    )
    log.info("snapshot.restored", name=name, indices=indices, replaced=doomed)
    return indices


__all__ = [
    "SnapshotInfo",
    "create_snapshot",
    "ensure_repository",
    "list_snapshots",
    "restore_snapshot",
    "snapshot_name",
]
