"""Who manages the generations, asked of the real nodes: neither the local Elasticsearch
build (no ILM module) nor OpenSearch (ISM, not ILM) has ILM, so detection says so without
failing and the core-API path (setup, ``index rollover``, ``index retire``) does the work."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.archive import index_retire, index_rollover
from pipeline.sinks.engines import open_backend
from pipeline.sinks.indexer import install_index
from pipeline.sinks.lifecycle import detect

pytestmark = pytest.mark.integration


async def test_no_ilm_on_the_test_nodes_so_the_core_path_runs(engine_settings: Any) -> None:
    settings = engine_settings("lifecycle", index_retention_days=30.0)
    alias = settings.index_alias
    backend = open_backend(settings)
    try:
        assert await backend.ilm_status() is None
        found = await detect(backend, settings)
        assert found.manager == "core" and found.refusal("rollover") is None
        setup = await install_index(backend, alias, settings)
        assert setup.lifecycle == "core"
        template = await backend.get_index_template(alias)
        assert template is not None
        assert "lifecycle" not in str(template.get("template", {}).get("settings", {}))
        # The core path is not refused: a rollover by hand, and retire (nothing old yet).
        rolled = await index_rollover(settings, now=True, dry_run=False)
        assert rolled.rolled_over and rolled.new_index == f"{alias}-000002"
        assert await index_retire(settings, dry_run=True, empty=True) != []
    finally:
        for name in await backend.alias_indices(alias):
            await backend.delete_index(name)
        await backend.close()
