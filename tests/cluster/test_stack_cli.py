"""``newswire stack status`` and ``stack down`` on the cluster the session started (issue 18):
the command line finds every node from the recorded size, the endpoints file lists every
broker and node, and ``stack down`` stops all six (it runs last: the fixture's own stop then
finds nothing to do)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from workshop.stack.process import is_alive

if TYPE_CHECKING:
    from tests.plugins.cluster import Cluster

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]


def newswire(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    """The command line with the cluster's home and first node's ports (nothing else)."""
    s = cluster.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")}
    env.update(
        NEWSWIRE_HOME=str(s.home),
        NEWSWIRE_KAFKA_PORT=str(s.kafka_port),
        NEWSWIRE_KAFKA_CONTROLLER_PORT=str(s.kafka_controller_port),
        NEWSWIRE_SEARCH_PORT=str(s.search_port),
        NEWSWIRE_SEARCH_TRANSPORT_PORT=str(s.search_transport_port),
        NEWSWIRE_NER_BACKEND="spacy",
    )
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "stack", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_stack_status_shows_every_node_and_the_endpoints_list_them(cluster: Cluster) -> None:
    done = newswire(cluster, "status", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    status = json.loads(done.stdout)
    assert [s["service"] for s in status["services"]] == [
        "kafka-1", "kafka-2", "kafka-3", "elasticsearch-1", "elasticsearch-2", "elasticsearch-3",
    ]  # fmt: skip
    assert all(s["healthy"] for s in status["services"])
    assert status["kafka_version"] and status["search_version"]
    endpoints = json.loads((cluster.settings.home / "endpoints.json").read_text())
    assert endpoints["kafka_bootstrap"] == cluster.settings.kafka_bootstrap
    assert endpoints["search_url"] == cluster.settings.elasticsearch_url


def test_stack_up_with_another_size_is_refused_while_the_cluster_runs(cluster: Cluster) -> None:
    done = newswire(cluster, "up")
    assert done.returncode != 0
    assert "3-node stack runs" in done.stdout + done.stderr


@pytest.mark.stack_last
def test_stack_down_stops_every_node(cluster: Cluster) -> None:
    pids = {s.name: s.pid for s in cluster.local.status().services}
    assert len(pids) == 6 and all(pids.values())
    done = newswire(cluster, "down")
    assert done.returncode == 0, done.stdout + done.stderr
    assert not [name for name, pid in pids.items() if is_alive(pid)]
    assert not any(s.running for s in cluster.local.status().services)
    assert not (cluster.settings.home / "cluster.json").exists()
    assert not (cluster.settings.home / "endpoints.json").exists()
