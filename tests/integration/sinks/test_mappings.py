"""Mappings evolve on the real Elasticsearch: a field added by a release is added in place
by setup while articles are being written; nothing goes to the DLQ; a changed type rolls
the write index over."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline.errors import RetryableError
from pipeline.models import EnrichedArticle
from pipeline.sinks.backend import SearchBackend
from pipeline.sinks.engines import open_backend
from pipeline.sinks.indexer import Indexer, install_index
from pipeline.sinks.mappings import check_index
from pipeline.sinks.templates import first_index, load_templates

pytestmark = pytest.mark.integration

T0 = datetime(2025, 6, 1, tzinfo=UTC)


async def _install_old_release(backend: SearchBackend, alias: str, drop: str) -> None:
    """The templates and first index as an older release left them: without ``drop``."""
    # The analysis the node has, as setup picks it (OpenSearch has English, the local ES not).
    templates = load_templates("english" if await backend.has_analyzer("english") else "standard")
    for name, body in templates.components.items():
        body = copy.deepcopy(body)
        if name == "newswire-mappings":
            del body["template"]["mappings"]["properties"][drop]
        await backend.put_component_template(name, body)
    await backend.put_index_template(
        alias, {**templates.index_template, "index_patterns": [f"{alias}-*"]}
    )
    await backend.create_index(first_index(alias), {"aliases": {alias: {"is_write_index": True}}})


@pytest.fixture
async def old_index(engine_settings: Any) -> Any:
    settings = engine_settings("mapping")
    backend = open_backend(settings)
    await _install_old_release(backend, settings.index_alias, drop="enrichment_version")
    yield settings, backend
    for name in await backend.alias_indices(settings.index_alias):
        await backend.delete_index(name)
    await backend.close()


async def test_a_new_field_is_live_after_setup_while_ingest_runs(old_index: Any) -> None:
    settings, backend = old_index
    alias = settings.index_alias
    indexer = Indexer(backend, alias, refresh="true")
    # An article of the old release is in; the new release's worker waits with a reason.
    await indexer.write([EnrichedArticle(id="old", title="old", fetched_at=T0)])
    with pytest.raises(RetryableError, match="lacks \\['enrichment_version'\\]"):
        await check_index(backend, alias, EnrichedArticle)

    written: list[str] = []
    rejected: list[Any] = []
    waits = 0
    set_up = asyncio.Event()

    async def worker() -> None:
        """What the sink does: check the index, then write; wait while it is too old."""
        nonlocal waits
        n = 0
        while len(written) < 300:
            try:
                await check_index(backend, alias, EnrichedArticle)
            except RetryableError:
                waits += 1
                await asyncio.sleep(0.05)
                continue
            batch = [
                EnrichedArticle(
                    id=f"new{n + i}",
                    title="new",
                    fetched_at=T0 + timedelta(seconds=n + i),
                    enrichment_version="ev-2",
                )
                for i in range(30)
            ]
            n += 30
            result = await indexer.write(batch)
            written.extend(result.indexed)
            rejected.extend(result.rejected)

    async def operator() -> None:
        await asyncio.sleep(0.5)  # ingest is waiting by now
        await install_index(backend, alias, settings)  # `newswire setup` of the new release
        set_up.set()

    await asyncio.gather(worker(), operator())
    assert rejected == []  # nothing for the DLQ
    assert waits > 0 and len(written) == 300
    await backend.refresh(alias)
    hits = await backend.count(alias, {"query": {"term": {"enrichment_version": "ev-2"}}})
    assert hits == 300  # the new field is mapped and searchable
    assert len(await backend.alias_indices(alias)) == 1  # in place: no new generation


async def test_a_changed_type_rolls_the_write_index_over(old_index: Any) -> None:
    settings, backend = old_index
    alias = settings.index_alias
    write = first_index(alias)
    # An operator (or an old release) mapped a field differently on the live index.
    await backend.put_mapping(write, {"properties": {"enrichment_version": {"type": "text"}}})
    setup = await install_index(backend, alias, settings)
    assert setup.mapping_conflicts == {write: ["enrichment_version (text -> keyword)"]}
    assert setup.rolled_over_to is not None
    writes = await backend.alias_indices(alias)
    assert writes == {write: False, setup.rolled_over_to: True}
    await check_index(backend, alias, EnrichedArticle)  # the new generation is right
    again = await install_index(backend, alias, settings)  # idempotent: no second rollover
    assert again.rolled_over_to is None
