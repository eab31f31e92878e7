"""pytest plugin: ``lose_and_restore``, the snapshot round trip both the single-node and
the cluster tests run: two article generations written, snapshotted to the filesystem
repository, lost, restored."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.errors import ConfigError
from pipeline.models import EnrichedArticle
from pipeline.settings import Settings
from pipeline.sinks.engines import open_backend
from pipeline.sinks.generations import rollover
from pipeline.sinks.indexer import Indexer, install_index
from pipeline.sinks.snapshots import create_snapshot, list_snapshots, restore_snapshot
from tests.plugins.kafka_helpers import session_fixture_of


async def lose_and_restore(settings: Settings) -> None:
    """Create a snapshot of two generations, refuse to overwrite live indices, delete them
    (the disaster), restore: the same documents, one write index, revisions in place."""
    alias = settings.index_alias
    backend = open_backend(settings)
    try:
        await install_index(backend, alias, settings)
        indexer = Indexer(backend, alias, refresh="true")
        when = datetime(2025, 1, 1, tzinfo=UTC)
        await indexer.write([EnrichedArticle(id=f"s{n}", fetched_at=when) for n in range(50)])
        await rollover(backend, alias, {}, force=True)
        await indexer.write([EnrichedArticle(id=f"t{n}", fetched_at=when) for n in range(30)])
        info = await create_snapshot(backend, settings, f"{alias}-snap")
        assert info.state == "SUCCESS" and len(info.indices) == 2
        assert info.name in {s.name for s in await list_snapshots(backend, settings)}
        with pytest.raises(ConfigError, match="--replace"):
            await restore_snapshot(backend, settings, info.name)
        for name in await backend.alias_indices(alias):  # the disaster
            await backend.delete_index(name)
        assert not await backend.alias_exists(alias)
        restored = await restore_snapshot(backend, settings, info.name)
        assert sorted(restored) == sorted(info.indices)
        await backend.refresh(alias)
        assert await backend.count(alias) == 80
        writes = await backend.alias_indices(alias)
        assert sum(writes.values()) == 1  # one write index, as before
        await indexer.write(
            [EnrichedArticle(id="s1", title="revised", fetched_at=datetime.now(UTC))]
        )
        await backend.refresh(alias)
        assert await backend.count(alias) == 80  # revisions still land in place
    finally:
        for name in await backend.alias_indices(alias):
            await backend.delete_index(name)
        await backend.close()


lose_and_restore_fixture = session_fixture_of(lose_and_restore)
