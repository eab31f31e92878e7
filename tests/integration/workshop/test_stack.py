"""The local stack against real servers: idempotent up, truthful status, Kafka round trip,
Elasticsearch (and OpenSearch) health and English analysis, and (last of the session) a
clean down."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from pipeline.endpoints import read_endpoints, resolve
from workshop.stack import LocalStack, local_endpoints
from workshop.stack.maven import DEFAULT_POM, read_versions
from workshop.stack.process import is_alive, port_open

if TYPE_CHECKING:
    from tests.plugins.endpoints import SearchNodeEndpoint, StackEndpoints

pytestmark = pytest.mark.integration
VERSIONS = read_versions(DEFAULT_POM)


def _local(stack: StackEndpoints) -> LocalStack:
    if stack.local is None:
        pytest.skip("servers come from NEWSWIRE_KAFKA_BOOTSTRAP / NEWSWIRE_ELASTICSEARCH_URL")
    return stack.local


def test_status_tells_the_truth(stack: StackEndpoints, shared_dist: Path) -> None:
    local = _local(stack)
    # A fresh object knows only the home: status comes from pid files, /proc and the ports.
    status = LocalStack(stack.settings, dist_dir=shared_dist).status()
    assert status.running and status.healthy, status.to_dict()
    for service in status.services:
        assert service.pid is not None and is_alive(service.pid)
        assert port_open(service.port)
        assert service.log_file.is_file()
        assert service.rss_bytes and service.rss_bytes > 50 * 1024 * 1024
    assert status.kafka.endpoint == stack.kafka_bootstrap == local.kafka.bootstrap
    assert status.search.endpoint == stack.search_url
    assert status.kafka.version == VERSIONS.kafka
    assert status.search_engine == "elasticsearch"
    assert status.search.version == VERSIONS.elasticsearch
    rss = {s.name: round((s.rss_bytes or 0) / 2**20) for s in status.services}
    print(f"RSS MiB: {rss}")


#: Settings with no cluster configured, as a user's shell without NEWSWIRE_* cluster vars.
UNSET = {"kafka_bootstrap": None, "elasticsearch_url": None, "opensearch_url": None}


def test_up_is_idempotent(stack: StackEndpoints, shared_dist: Path) -> None:
    local = _local(stack)
    before = local.status()
    messages: list[str] = []
    after = LocalStack(stack.settings, messages.append, dist_dir=shared_dist).up()
    assert [s.pid for s in after.services] == [s.pid for s in before.services]
    assert sum("already running" in m for m in messages) == len(before.services)
    # Nothing resolved, built or started again.
    work = ("downloading", "resolving", "building", "installing", "starting")
    assert not [m for m in messages if m.startswith(work)], messages
    data = json.loads((stack.settings.home / "stack.json").read_text())
    assert data["kafka_bootstrap"] == stack.kafka_bootstrap
    assert data["search_url"] == stack.search_url
    assert data["search_engine"] == "elasticsearch"
    assert data["search_version"] == VERSIONS.elasticsearch
    assert data["search_extensions"] == ["newswire-analysis-english"]
    assert data["kafka_version"] == VERSIONS.kafka
    assert local_endpoints(stack.settings) == data
    # The contract the command line reads: the services' endpoints, nothing else.
    endpoints = read_endpoints(stack.settings.home)
    assert endpoints is not None
    assert endpoints.kafka_bootstrap == stack.kafka_bootstrap
    assert (endpoints.search_engine, endpoints.search_url) == ("elasticsearch", stack.search_url)
    assert endpoints.corenlp_url == data["corenlp_url"]
    resolved = resolve(stack.settings.model_copy(update=UNSET))
    assert resolved.kafka_bootstrap == stack.kafka_bootstrap
    assert resolved.elasticsearch_url == stack.search_url


async def test_kafka_produce_and_consume(stack: StackEndpoints) -> None:
    topic = f"newswire.test.stack.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, b"hello newswire", key=b"k1")
    finally:
        await producer.stop()
    assert meta.offset == 0
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=stack.kafka_bootstrap,
        group_id=f"g-{topic}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
        await consumer.commit()
    finally:
        await consumer.stop()
    assert (record.key, record.value) == (b"k1", b"hello newswire")


def _analyze(client: httpx.Client, **body: object) -> list[str]:
    response = client.post("/_analyze", json=body)
    assert response.status_code == 200, response.text
    return [t["token"] for t in response.json()["tokens"]]


def test_elasticsearch_health_version_and_english_analysis(stack: StackEndpoints) -> None:
    """The integ-test-zip node answers health and node info (not ``GET /``), and the
    project's plugin gives it production's English analysis."""
    with httpx.Client(base_url=stack.search_url, timeout=10) as client:
        health = client.get("/_cluster/health").json()
        assert health["status"] in {"green", "yellow"}
        nodes = client.get("/_nodes/_local").json()["nodes"]
        assert [n["version"] for n in nodes.values()] == [VERSIONS.elasticsearch]
        plugins = [p["name"] for n in nodes.values() for p in n["plugins"]]
        assert "newswire-analysis-english" in plugins
        assert client.get("/").status_code == 405  # why health checks avoid GET /
        text = "The company's runners were running quickly to Zürich"
        assert _analyze(client, analyzer="english", text=text) == [
            "compani", "runner", "were", "run", "quickli", "zürich",
        ]  # fmt: skip
        assert _analyze(
            client,
            tokenizer="standard",
            filter=[
                {"type": "stemmer", "language": "possessive_english"},
                "lowercase",
                "asciifolding",
                {"type": "stop", "stopwords": "_english_"},
                {"type": "stemmer", "language": "english"},
            ],
            text=text,
        ) == ["compani", "runner", "were", "run", "quickli", "zurich"]
        refused = client.post(
            "/_analyze",
            json={
                "tokenizer": "standard",
                "filter": [{"type": "stemmer", "language": "x"}],
                "text": "running",
            },
        )
        # Refused with the reason (the node wraps a stable plugin's refusal as a 500).
        assert refused.status_code >= 400 and "unknown language [x]" in refused.text


def test_opensearch_node_health_version_and_english_analyzer(
    opensearch: SearchNodeEndpoint,
) -> None:
    with httpx.Client(base_url=opensearch.url, timeout=10) as client:
        health = client.get("/_cluster/health").json()
        assert health["status"] in {"green", "yellow"}
        root = client.get("/").json()
        assert root["version"]["distribution"] == "opensearch"
        assert root["version"]["number"] == VERSIONS.opensearch
        assert _analyze(client, analyzer="english", text="running") == ["run"]
        assert _analyze(
            client, tokenizer="standard", filter=["lowercase", "asciifolding"], text="Café"
        ) == ["cafe"]


@pytest.mark.stack_last
def test_down_stops_both(stack: StackEndpoints) -> None:
    local = _local(stack)
    before = local.status()
    pids = [s.pid for s in before.services]
    started = time.monotonic()
    local.down()
    elapsed = time.monotonic() - started
    assert elapsed < 60
    after = local.status()
    assert not after.running and not after.healthy
    assert all(not s.running and s.pid is None for s in after.services)
    assert all(pid is not None and not is_alive(pid) for pid in pids)
    assert not port_open(local.kafka.port) and not port_open(local.search.port)
    assert not local.kafka.pid_file.exists() and not local.search.pid_file.exists()
    assert local_endpoints(stack.settings) is None
    assert read_endpoints(stack.settings.home) is None  # removed with the stack
    local.down()  # tolerant when nothing runs
    print(f"down took {elapsed:.1f} s")
