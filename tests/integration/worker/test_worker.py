"""The Faust worker as a real process: seeds end to end, SIGKILL halfway, the DLQ."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web

from pipeline.alerts.model import new_alert
from pipeline.alerts.registry import save_alert
from pipeline.alerts.webhooks import SIGNATURE_HEADER, verify
from pipeline.enrich.dedup import fingerprint
from pipeline.kafka.client import encode, make_producer, publish_raw
from pipeline.models import EnrichedArticle, RawArticle, Source
from pipeline.provision import run_setup
from pipeline.search.stories import get_story
from pipeline.settings import CORENLP_MODEL, Settings
from pipeline.sinks.engines import open_backend
from pipeline.sources.replay import ReplayReport, collect, replay

if TYPE_CHECKING:
    from tests.plugins.worker_process import WorkerProcess

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def worker_settings(stack: Any, isolated: Any) -> Settings:
    return isolated(stack.settings, "worker", batch_size=32, batch_seconds=0.5)


@pytest.fixture
def worker(worker_settings: Settings, tmp_path: Path, worker_process: Any) -> WorkerProcess:
    """The worker under test (not started; stopped by ``worker_process`` at the end)."""
    return worker_process(worker_settings, tmp_path / "worker.log")


async def _count(settings: Settings, ids: list[str] | None = None) -> int:
    backend = open_backend(settings)
    try:
        await backend.refresh(settings.index_alias)
        body = {"query": {"ids": {"values": ids}}} if ids is not None else None
        return await backend.count(settings.index_alias, body)
    finally:
        await backend.close()


async def _source(settings: Settings, doc_id: str) -> dict[str, Any] | None:
    backend = open_backend(settings)
    try:
        return await backend.get_source(settings.index_alias, doc_id)
    finally:
        await backend.close()


async def test_seed_end_to_end_and_second_replay_keeps_one_document(
    worker_settings: Settings, worker: WorkerProcess, wait_for: Any
) -> None:
    await run_setup(worker_settings)
    worker.start()
    report = await replay([REPO / "seeds"], worker_settings)
    assert report.articles == 1 and not report.errors
    seed_id = report.ids[0]

    async def indexed() -> bool:
        assert worker.alive(), worker.tail()
        return await _count(worker_settings, [seed_id]) == 1

    await wait_for(indexed, 180, "the seed article to be indexed")
    first = await _source(worker_settings, seed_id)
    assert first is not None
    assert first["published_at"].startswith("2015-12-15")
    assert "John Kerry" in first["entities"]["person"]
    assert first["topics"], "at least one topic"

    again = await replay([REPO / "seeds"], worker_settings)
    assert again.ids == [seed_id]

    async def reindexed() -> bool:
        source = await _source(worker_settings, seed_id)
        return source is not None and source["fetched_at"] > first["fetched_at"]

    await wait_for(reindexed, 120, "the second replay to reach the index")
    assert await _count(worker_settings) == 1


async def test_sigkill_halfway_leaves_every_article_indexed_exactly_once(
    worker_settings: Settings, worker: WorkerProcess, stack: Any, wait_for: Any
) -> None:
    bbc = stack.settings.eval_dir / "bbc-dev"
    if not bbc.is_dir():
        pytest.skip(f"evaluation data not found at {bbc} (set NEWSWIRE_EVAL_DIR)")
    # Distinct articles: one per id, and exact duplicates (same normalised text under
    # another id) count once, since the worker drops them before enrichment.
    groups: dict[str, set[str]] = {}
    for article in collect([bbc], worker_settings, ReplayReport()):
        key = fingerprint(article.title, article.summary, article.body)
        groups.setdefault(key, set()).add(article.id)
    expected = set().union(*groups.values())
    distinct = len(groups)
    assert distinct > 1000
    await run_setup(worker_settings)
    worker.start()
    report = await replay([bbc], worker_settings)
    assert report.articles == 1114 and not report.errors

    async def halfway() -> bool:
        assert worker.alive(), worker.tail()
        return await _count(worker_settings) >= distinct // 3

    await wait_for(halfway, 400, "a third of bbc-dev to be indexed", every=0.5)
    worker.kill()
    killed_at = await _count(worker_settings)
    assert killed_at < distinct, "the worker finished before it could be killed"
    worker.start()

    async def complete() -> bool:
        assert worker.alive(), worker.tail()
        return await _count(worker_settings) >= distinct

    await wait_for(complete, 600, "every bbc-dev article to be indexed", every=2)
    assert await _count(worker_settings) == distinct
    assert await _count(worker_settings, sorted(expected)) == distinct
    for ids in groups.values():  # exactly one article of each duplicate group
        assert await _count(worker_settings, sorted(ids)) == 1, ids


async def test_unindexable_records_go_to_the_dlq_and_the_worker_goes_on(
    worker_settings: Settings, worker: WorkerProcess, wait_for: Any, read_topic: Any
) -> None:
    """Records that cannot be read or indexed go to the DLQ. Records with fields this
    version does not know (a newer version's, during a rolling upgrade) do not: the rule
    is that unknown fields are ignored, so they are enriched and indexed without them
    (until issue 9 such an enriched record was dead-lettered as "not_in_mapping")."""
    await run_setup(worker_settings)
    worker.start()
    good = EnrichedArticle(id="good", title="A good record", body="Fine.", language="en")
    immense = EnrichedArticle(id="immense", title="Refused", authors=["x" * 40000])
    unknown = {**good.document(), "id": "unknown", "not_in_mapping": True}
    unknown["entities"]["event"] = ["Upgrade Day"]
    newer_raw = {
        **RawArticle(id="newer-raw", title="A raw record from a newer poller",
                     body="It carries fields this worker does not know.").model_dump(mode="json"),
        "paywall": True,
        "source": {"name": "Future", "region": "eu"},
    }  # fmt: skip
    producer = make_producer(worker_settings)
    await producer.start()
    try:
        for key, value in (
            (b"unknown", json.dumps(unknown).encode()),
            (b"immense", encode(immense.document())),
            (b"broken", b"{not json"),
            (b"good", encode(good.document())),
        ):
            await producer.send_and_wait(worker_settings.topic_enriched, value=value, key=key)
        await producer.send_and_wait(worker_settings.topic_raw, value=b"\xff\xfe", key=b"raw-bad")
        await producer.send_and_wait(
            worker_settings.topic_raw, value=json.dumps(newer_raw).encode(), key=b"newer-raw"
        )
    finally:
        await producer.stop()
    assert worker_settings.kafka_bootstrap

    async def all_indexed() -> bool:
        assert worker.alive(), worker.tail()
        return await _count(worker_settings, ["good", "unknown", "newer-raw"]) == 3

    await wait_for(all_indexed, 180, "the good and the newer-version records to be indexed")
    dead = await read_topic(worker_settings.kafka_bootstrap, worker_settings.topic_dlq, 3, 120)
    by_key = {record["key"]: record for record in dead}
    assert set(by_key) == {"immense", "broken", "raw-bad"}, worker.tail()
    assert "immense" in by_key["immense"]["reason"].lower() or "400" in by_key["immense"]["reason"]
    assert by_key["immense"]["original"]["id"] == "immense"
    assert by_key["raw-bad"]["stage"] == "enrich"
    stored = await _source(worker_settings, "unknown")
    assert stored is not None and "not_in_mapping" not in stored
    assert "event" not in stored["entities"]
    newer = await _source(worker_settings, "newer-raw")
    assert newer is not None and newer["source"]["name"] == "Future"
    assert "worker.unknown_fields_ignored" in worker.log_file.read_text(errors="replace")


STORY = (
    "The European Central Bank raised its main interest rate by a quarter point on Thursday, "
    "its third increase this year, saying inflation in the euro zone remained too high. "
    "Bank president Christine Lagarde told reporters in Frankfurt that further rises were "
    "possible if energy prices kept pushing consumer prices up, and markets fell after the "
    "announcement as investors priced in a longer period of tight money."
)


async def test_same_story_from_two_sources_shares_a_cluster_and_duplicates_drop(
    worker_settings: Settings, worker: WorkerProcess, wait_for: Any, read_topic: Any
) -> None:
    rewrite = (
        STORY.replace("on Thursday", "on Thursday afternoon")
        .replace("told reporters in Frankfurt", "said in Frankfurt")
        .replace("markets fell", "European shares fell")
    )
    other = (
        "Manchester United beat Liverpool 2-1 at Old Trafford on Sunday, with a late header "
        "from the captain deciding a tense match in front of a sell-out crowd of 74,000."
    )
    articles = [
        RawArticle(id="wire-a", title="ECB raises rates again", body=STORY,
                   source=Source(name="Wire A")),
        RawArticle(id="wire-b", title="ECB lifts interest rates for third time", body=rewrite,
                   source=Source(name="Wire B")),
        RawArticle(id="copy-a", title="ECB raises rates again", body=STORY + "  ",
                   source=Source(name="Aggregator")),
        RawArticle(id="match", title="United edge Liverpool", body=other,
                   source=Source(name="Sport")),
    ]  # fmt: skip
    await run_setup(worker_settings)
    # A standing query saved before the worker starts: matched in-stream, after indexing,
    # and posted by the worker's own delivery task to a loopback webhook.
    hooks: list[tuple[dict[str, str], bytes]] = []

    async def receive(request: web.Request) -> web.Response:
        hooks.append((dict(request.headers), await request.read()))
        return web.Response(status=204)

    receiver = web.Application()
    receiver.router.add_post("/hook", receive)
    runner = web.AppRunner(receiver)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    alert_ecb = new_alert("ecb", "ECB rates", ["source=Wire B"], allow_private=True,
                          webhook=f"http://127.0.0.1:{port}/hook")  # fmt: skip
    await save_alert(worker_settings, alert_ecb)
    worker.start(NEWSWIRE_ALLOW_PRIVATE_FEEDS="true")
    producer = make_producer(worker_settings)
    await producer.start()
    try:
        await publish_raw(producer, worker_settings.topic_raw, articles)
    finally:
        await producer.stop()

    async def indexed() -> bool:
        assert worker.alive(), worker.tail()
        return await _count(worker_settings, ["wire-a", "wire-b", "match"]) == 3

    await wait_for(indexed, 180, "the three distinct stories to be indexed")
    sources = {i: await _source(worker_settings, i) for i in ("wire-a", "wire-b", "match")}
    clusters = {i: s["cluster_id"] for i, s in sources.items() if s is not None}
    assert clusters["wire-a"] == clusters["wire-b"]
    assert clusters["match"] != clusters["wire-a"]
    assert await _count(worker_settings, ["copy-a"]) == 0  # exact duplicate, dropped
    assert "duplicate_dropped" in worker.tail()
    (alert,) = await read_topic(worker_settings.kafka_bootstrap, worker_settings.topic_alerts, 1)
    assert alert["alert"] == "ecb" and alert["article"]["id"] == "wire-b"
    assert alert["why"]["facets"] == {"source.name": "Wire B"}

    async def delivered() -> bool:
        return bool(hooks)

    try:
        await wait_for(delivered, 60, "the webhook delivery")
    finally:
        await runner.cleanup()
    headers, body = hooks[0]
    assert verify(alert_ecb.secret, body, headers[SIGNATURE_HEADER])
    assert json.loads(body)["match"]["article"]["id"] == "wire-b"
    # The story keeps its copy among its sources, though the copy was never indexed.
    story_id = clusters["wire-a"]

    async def story_complete() -> bool:
        story = await get_story(worker_settings, story_id)
        return story is not None and story.get("copy_count") == 1

    await wait_for(story_complete, 60, "the copy folded into its story")
    story = await get_story(worker_settings, story_id)
    assert story is not None and story["article_count"] == 2
    assert set(story["sources"]) == {"Wire A", "Wire B", "Aggregator"}


async def test_a_transient_unexpected_error_is_retried_and_loses_nothing(
    worker_settings: Settings, worker: WorkerProcess, tmp_path: Path, wait_for: Any
) -> None:
    articles = [
        RawArticle(id=f"fault-{n}", title=f"Story {n}", body=f"Body of story number {n}.")
        for n in range(5)
    ]
    await run_setup(worker_settings)
    producer = make_producer(worker_settings)
    await producer.start()
    try:
        await publish_raw(producer, worker_settings.topic_raw, articles)
    finally:
        await producer.stop()
    faults = str(REPO / "tests" / "integration" / "faults")
    worker.start(
        PYTHONPATH=os.pathsep.join([faults, os.environ.get("PYTHONPATH", "")]),
        NEWSWIRE_TEST_FAULT="enrich-once",
        NEWSWIRE_TEST_FAULT_MARKER=str(tmp_path / "fault-fired"),
    )

    async def all_indexed() -> bool:
        assert worker.alive(), worker.tail()
        return await _count(worker_settings, [a.id for a in articles]) == len(articles)

    await wait_for(all_indexed, 180, "every article of the failed batch to be indexed")
    assert (tmp_path / "fault-fired").exists()
    assert "worker.batch_failing" not in worker.tail()  # one retry was enough
    assert "worker.fail_stop" not in worker.tail()


async def test_a_poison_record_goes_to_the_dlq_and_its_batch_goes_on(
    worker_settings: Settings, worker: WorkerProcess, wait_for: Any, read_topic: Any
) -> None:
    """A record that makes enrichment raise every time: after the bounded retries its batch
    is split until it is alone; it ends in the DLQ with its traceback, every other article
    of the batch is indexed, and the worker keeps running (no crash loop)."""
    articles = [
        RawArticle(
            id=f"batch-{n}",
            title="POISON story" if n == 6 else f"Story {n}",
            body=f"Body of story number {n}.",
        )
        for n in range(12)
    ]
    await run_setup(worker_settings)
    producer = make_producer(worker_settings)
    await producer.start()
    try:
        await publish_raw(producer, worker_settings.topic_raw, articles)
    finally:
        await producer.stop()
    faults = str(REPO / "tests" / "integration" / "faults")
    worker.start(
        PYTHONPATH=os.pathsep.join([faults, os.environ.get("PYTHONPATH", "")]),
        NEWSWIRE_TEST_FAULT="enrich-poison",
    )
    healthy = [a.id for a in articles if a.id != "batch-6"]

    async def others_indexed() -> bool:
        assert worker.alive(), worker.tail()
        return await _count(worker_settings, healthy) == len(healthy)

    await wait_for(others_indexed, 180, "every other article of the batch to be indexed")
    assert worker_settings.kafka_bootstrap is not None
    dead = await read_topic(worker_settings.kafka_bootstrap, worker_settings.topic_dlq, 1)
    assert [d["key"] for d in dead] == ["batch-6"]
    assert dead[0]["stage"] == "enrich"
    assert "Traceback" in dead[0]["reason"] and "injected poison record" in dead[0]["reason"]
    assert dead[0]["original"]["id"] == "batch-6"
    assert await _count(worker_settings, ["batch-6"]) == 0
    assert worker.alive() and "worker.fail_stop" not in worker.tail()
    assert "worker.batch_failing" in worker.tail()


async def test_a_record_that_kills_the_process_ends_in_the_dlq_after_the_crash_limit(
    worker_settings: Settings, worker: WorkerProcess, wait_for: Any, read_topic: Any
) -> None:
    """A record whose enrichment ends the whole process (``os._exit``: nothing to catch):
    the test restarts the worker each time it dies, as a supervisor would. The records in
    flight at each death are counted in the in-flight topic, across the restarts; suspects
    are then handled alone, and the killer goes to the DLQ at the crash limit with the
    reason; every other article is indexed and the last worker stays up."""
    articles = [
        RawArticle(
            id=f"crash-{n}",
            title="KILLER story" if n == 6 else f"Story {n}",
            body=f"Body of story number {n}.",
        )
        for n in range(12)
    ]
    await run_setup(worker_settings)
    producer = make_producer(worker_settings)
    await producer.start()
    try:
        await publish_raw(producer, worker_settings.topic_raw, articles)
    finally:
        await producer.stop()
    faults = str(REPO / "tests" / "integration" / "faults")
    env = {
        "PYTHONPATH": os.pathsep.join([faults, os.environ.get("PYTHONPATH", "")]),
        "NEWSWIRE_TEST_FAULT": "enrich-exit",
    }
    worker.start(**env)
    healthy = [a.id for a in articles if a.id != "crash-6"]
    limit = worker_settings.worker_crash_limit
    deaths: list[int | None] = []

    async def settled() -> bool:
        if not worker.alive():
            assert worker.process is not None
            deaths.append(worker.process.returncode)
            assert len(deaths) <= limit, worker.tail()
            worker.start(**env)  # the supervisor's restart, on the same batch
            return False
        return await _count(worker_settings, healthy) == len(healthy)

    await wait_for(settled, 400, "every other article to be indexed across the restarts")
    assert deaths == [86] * limit, (deaths, worker.tail())  # each death was the killer's
    assert worker_settings.kafka_bootstrap is not None
    dead = await read_topic(worker_settings.kafka_bootstrap, worker_settings.topic_dlq, 1)
    assert [d["key"] for d in dead] == ["crash-6"]
    assert dead[0]["stage"] == "enrich" and dead[0]["original"]["id"] == "crash-6"
    assert f"died {limit} times" in dead[0]["reason"]
    assert await _count(worker_settings, ["crash-6"]) == 0
    assert "worker.died_with_records_in_flight" in worker.tail()
    await asyncio.sleep(3)  # the last worker goes on: no further death
    assert worker.alive(), worker.tail()


async def test_corenlp_outage_waits_and_indexes_nothing_without_entities(
    stack: Any,
    tmp_path: Path,
    isolated: Any,
    wait_for: Any,
    worker_process: Any,
    test_port_base: int,
    shared_dist: Path,
) -> None:
    """The worker starts while its CoreNLP server is down: nothing is indexed, the batch is
    retried; once the server runs the article is indexed, with its entities."""
    import time

    from workshop.stack.corenlp import CoreNLPServer
    from workshop.stack.java import find_jdk
    from workshop.stack.process import stop_process, write_pid

    port = test_port_base + 501
    settings = isolated(
        stack.settings, "outage", batch_size=8, batch_seconds=0.5, corenlp_port=port,
        corenlp_url=None, ner_backend="corenlp",
    )  # fmt: skip
    worker = worker_process(settings, tmp_path / "worker.log")
    server = CoreNLPServer(settings, tmp_path / "home", shared_dist)
    pid = None
    article = RawArticle(
        id="outage-1", title="Kerry in Moscow", body="John Kerry met Sergei Lavrov in Moscow."
    )
    await run_setup(settings)
    worker.start()
    try:
        producer = make_producer(settings)
        await producer.start()
        try:
            await publish_raw(producer, settings.topic_raw, [article])
        finally:
            await producer.stop()

        async def retried() -> bool:
            assert worker.alive(), worker.tail()
            return "enrich.recogniser_unavailable" in worker.tail()

        await wait_for(retried, 120, "the worker to report CoreNLP unavailable")
        assert await _count(settings, ["outage-1"]) == 0, "indexed without entities"

        pid = server.start(find_jdk(*server.java_range))
        write_pid(server.pid_file, pid)
        deadline = time.monotonic() + server.start_timeout
        while not server.probe(timeout=2.0).healthy:
            assert time.monotonic() < deadline, f"CoreNLP did not start: {server.log_file}"
            await asyncio.sleep(0.5)

        async def indexed() -> bool:
            assert worker.alive(), worker.tail()
            return await _count(settings, ["outage-1"]) == 1

        await wait_for(indexed, 120, "the article to be indexed once CoreNLP runs")
        source = await _source(settings, "outage-1")
        assert source is not None
        assert source["entities"]["person"] == ["John Kerry", "Sergei Lavrov"]
        assert (source["recogniser"], source["recogniser_model"]) == ("corenlp", CORENLP_MODEL)
    finally:
        worker.stop()
        if pid is not None:
            stop_process(pid, timeout=server.stop_timeout, marker=server.marker_for())


async def test_an_offset_out_of_retention_stops_its_partition_and_says_so(
    worker_settings: Settings, worker: WorkerProcess, wait_for: Any
) -> None:
    """The group's committed offset of raw partition 0 was deleted by retention while the
    worker was away: the worker does not reset to the earliest record (which would skip
    the gap silently); it stops that partition, says so in its log, metrics and /health/,
    and goes on with the other partitions."""
    import socket

    import httpx
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
    from aiokafka.structs import OffsetAndMetadata

    await run_setup(worker_settings)
    bootstrap = worker_settings.kafka_bootstrap
    topic = worker_settings.topic_raw
    producer = make_producer(worker_settings)
    await producer.start()
    try:
        for n in range(20):
            article = RawArticle(id=f"p0-{n}", title=f"Zero {n}", body=f"Story zero {n}.")
            await producer.send_and_wait(
                topic, article.model_dump_json().encode(), key=article.id.encode(), partition=0
            )
        for n in range(5):
            article = RawArticle(id=f"p1-{n}", title=f"One {n}", body=f"Story one {n}.")
            await producer.send_and_wait(
                topic, article.model_dump_json().encode(), key=article.id.encode(), partition=1
            )
    finally:
        await producer.stop()
    tp0 = TopicPartition(topic, 0)
    group = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=worker_settings.worker_id, enable_auto_commit=False
    )
    await group.start()
    group.assign([tp0])
    try:
        await group.commit({tp0: OffsetAndMetadata(5, "")})  # read up to 5 before the outage
    finally:
        await group.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:  # retention deleted records 0-14 meanwhile (DeleteRecords does it at once)
        await admin.delete_records({tp0: RecordsToDelete(15)})
    finally:
        await admin.close()

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    worker.start(NEWSWIRE_WORKER_WEB_PORT=str(port))

    async def partition_1_indexed() -> bool:
        assert worker.alive(), worker.tail()
        return await _count(worker_settings, [f"p1-{n}" for n in range(5)]) == 5

    await wait_for(partition_1_indexed, 180, "the articles of partition 1 to be indexed")
    assert "worker.offset_out_of_retention" in worker.tail()
    async with httpx.AsyncClient(timeout=10) as client:
        health = (await client.get(f"http://127.0.0.1:{port}/health/")).json()
        metrics_text = (await client.get(f"http://127.0.0.1:{port}/metrics/")).text
    assert health["status"] == "degraded"
    assert health["partitions_stopped"] == [
        {"topic": topic, "partition": 0, "committed": 5, "earliest": 15, "lost": 10}
    ]
    assert f'newswire_partitions_stopped{{partition="0",topic="{topic}"}} 1.0' in metrics_text
    # Nothing of partition 0 was read past the gap: records 15-19 wait for the operator.
    assert await _count(worker_settings, [f"p0-{n}" for n in range(20)]) == 0
