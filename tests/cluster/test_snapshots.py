"""Snapshots on the three-node cluster: every node must reach the filesystem repository
(the local cluster's nodes share one ``path.repo``, as a shared mount would in production),
and the primaries and replicas of two generations come back after they are lost."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.plugins.cluster import Cluster

pytestmark = pytest.mark.cluster


async def test_snapshot_create_and_restore_on_the_cluster(
    cluster: Cluster, isolated: Any, lose_and_restore: Any
) -> None:
    location = cluster.settings.home.resolve() / "elasticsearch" / "snapshots" / "cluster-test"
    await lose_and_restore(isolated(cluster.settings, "snap", snapshot_location=str(location)))
