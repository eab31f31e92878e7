"""The local cluster of the cluster suite (``make test-cluster``, tests/cluster/) and what its
fault tests share, as a pytest plugin.

``cluster`` is a session fixture: three KRaft brokers (combined broker + controller, a
static 3-voter quorum, RF 3 / min ISR 2) and three Elasticsearch nodes in
``.newswire/test-cluster``, on ports base+900..905 (brokers and controllers), base+910..912
(HTTP) and base+920..922 (transport), started once and stopped at the end of the session.
``ArticleFeed`` publishes articles in small chunks while a fault happens; ``leaders`` and
``primary_nodes`` say which broker and which node to kill."""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from pipeline.settings import Settings
from tests.plugins.kafka_helpers import session_fixture_of
from workshop.stack import LocalStack
from workshop.stack.cluster import client_settings

REPO = Path(__file__).resolve().parents[2]
CLUSTER_HOME = REPO / ".newswire" / "test-cluster"
SHARED_DIST = REPO / ".newswire" / "dist"
NODES = 3


@dataclass
class Cluster:
    """The running cluster: its stack (kill, stop, start nodes) and the client settings
    (every broker and node listed, RF 3 / min ISR 2 / 1 replica, the spaCy recogniser)."""

    local: LocalStack
    settings: Settings

    def broker_name(self, node_id: int) -> str:
        return f"kafka-{node_id}"

    def search_name(self, node_name: str) -> str:
        """``elasticsearch-2`` of the Elasticsearch node name ``newswire-local-2``."""
        return f"{self.local.search.engine}-{node_name.rsplit('-', 1)[-1]}"

    def up(self) -> float:
        """Start whatever is down and wait until every server is healthy; seconds taken."""
        started = time.monotonic()
        self.local.up()
        return time.monotonic() - started


def cluster_settings(base: int, home: Path = CLUSTER_HOME, offset: int = 900) -> Settings:
    """Settings of a cluster on ports ``base+offset`` onwards (see the module docstring)."""
    kafka, search = base + offset, base + offset + 10
    settings = Settings(
        home=home,
        kafka_port=kafka,
        kafka_controller_port=kafka + 1,
        search_port=search,
        search_transport_port=search + 10,
        kafka_heap="512m",
        search_heap="512m",
        ner_backend="spacy",
    )
    return client_settings(settings, NODES)


def fresh_cluster(settings: Settings) -> LocalStack:
    """The cluster stack of ``settings.home``; when none of it runs, its data is deleted
    first (test data; a formatted quorum remembers its old ports)."""
    local = LocalStack(settings, dist_dir=SHARED_DIST, nodes=NODES, services=("kafka", "search"))
    if not any(s.running for s in local.status().services):
        for folder in [k.base for k in local.kafkas] + [n.base for n in local.searches]:
            shutil.rmtree(folder, ignore_errors=True)
        (settings.home / "kafka-cluster.id").unlink(missing_ok=True)
    return local


@pytest.fixture(scope="session")
def cluster(test_port_base: int) -> Iterator[Cluster]:
    """Three brokers and three Elasticsearch nodes for the session (stopped at its end)."""
    settings = cluster_settings(test_port_base)
    local = fresh_cluster(settings)
    started_here = not local.status().healthy
    try:
        local.up(timeout=600)
    except BaseException:
        if started_here:
            local.down()
        raise
    try:
        yield Cluster(local, settings)
    finally:
        if started_here and os.environ.get("NEWSWIRE_TEST_KEEP_STACK") != "1":
            local.down()


async def leaders(settings: Settings, topic: str) -> Counter[int]:
    """Broker id -> how many of ``topic``'s partitions it leads."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        cluster = consumer._client.cluster
        partitions = cluster.partitions_for_topic(topic) or set()
        found = (cluster.leader_for_partition(_tp(topic, p)) for p in partitions)
        return Counter(leader for leader in found if leader is not None and leader >= 0)
    finally:
        await consumer.stop()


def _tp(topic: str, partition: int) -> Any:
    from aiokafka import TopicPartition

    return TopicPartition(topic, partition)


async def under_replicated(settings: Settings) -> int:
    """Partitions of every topic whose in-sync replicas are fewer than their replicas."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        topics = await admin.list_topics()
        described = await admin.describe_topics(list(topics))
        return sum(
            1
            for topic in described
            for partition in topic.get("partitions", [])
            if len(partition.get("isr", [])) < len(partition.get("replicas", []))
        )
    finally:
        await admin.close()


async def replica_counts(settings: Settings, topic: str) -> set[int]:
    """The replication factors of ``topic``'s partitions (one value when set up evenly)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        return {len(p.get("replicas", [])) for p in described.get("partitions", [])}
    finally:
        await admin.close()


def index_replicas(settings: Settings, index: str) -> set[int]:
    """``number_of_replicas`` of each index behind ``index`` (an alias)."""
    found = _first_answer(settings, f"/{index}/_settings/index.number_of_replicas", {})
    return {int(v["settings"]["index"]["number_of_replicas"]) for v in found.values()}


def primary_nodes(settings: Settings, index: str) -> list[str]:
    """Names of the Elasticsearch nodes holding ``index``'s primary shards (alias works)."""
    shards = _first_answer(
        settings, f"/_cat/shards/{index}", {"format": "json", "h": "prirep,node"}
    )
    return sorted({row["node"] for row in shards if row.get("prirep") == "p" and row.get("node")})


def cluster_health(settings: Settings) -> dict[str, Any]:
    """``GET /_cluster/health`` from the first node that answers."""
    health: dict[str, Any] = _first_answer(settings, "/_cluster/health", {})
    return health


def _first_answer(settings: Settings, path: str, params: dict[str, str]) -> Any:
    last: Exception | None = None
    for url in str(settings.elasticsearch_url).split(","):
        try:
            response = httpx.get(url + path, params=params, timeout=10)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            last = exc
    raise AssertionError(f"no Elasticsearch node answered {path}: {last!r}")


leaders_fixture = session_fixture_of(leaders)
under_replicated_fixture = session_fixture_of(under_replicated)
primary_nodes_fixture = session_fixture_of(primary_nodes)
cluster_health_fixture = session_fixture_of(cluster_health)
replica_counts_fixture = session_fixture_of(replica_counts)
index_replicas_fixture = session_fixture_of(index_replicas)
