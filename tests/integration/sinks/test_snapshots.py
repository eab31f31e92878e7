"""Snapshots on the local Elasticsearch node: create to the filesystem repository under
its ``path.repo``, restore after the generations are lost, refuse to overwrite live ones."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.integration


async def test_snapshot_create_and_restore_every_generation(
    engine_settings: Any, lose_and_restore: Any
) -> None:
    node_dir = engine_settings.snapshot_dir
    if node_dir is None:
        pytest.skip("needs the local node: its path.repo is known (set up by the stack)")
    location = str(node_dir / "snapshots" / "test")
    await lose_and_restore(engine_settings("snap", snapshot_location=location))
