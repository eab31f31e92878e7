"""Standing queries end to end on the real local Kafka and Elasticsearch: the compacted
topic followed live, matches written to the alerts topic, and webhook deliveries where a
failing and a slow receiver hold back nobody else."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from pipeline.alerts.delivery import Delivery
from pipeline.alerts.model import new_alert
from pipeline.alerts.registry import load_alerts, load_status, remove_alert, save_alert
from pipeline.alerts.stage import AlertStage
from pipeline.alerts.webhooks import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verify
from pipeline.kafka.client import bootstrap, make_producer, send_all, start_client
from pipeline.sinks.engines import open_backend
from pipeline.sinks.indexer import Indexer, install_index

pytestmark = pytest.mark.integration


@pytest.fixture
async def indexed(stack: Any, isolated: Any, alerts_corpus: Any) -> AsyncIterator[tuple[Any, Any]]:
    settings = isolated(
        stack.settings, "alertflow", opensearch_url=None, allow_private_feeds=True,
        webhook_attempts=3, webhook_backoff=0.2, webhook_timeout=1.0,
    )  # fmt: skip
    backend = open_backend(settings)
    await install_index(backend, settings.index_alias)
    await Indexer(backend, settings.index_alias, refresh="true").write(alerts_corpus.articles)
    yield settings, backend
    await backend.close()


async def test_changes_to_standing_queries_apply_without_restart(
    indexed: Any, alerts_corpus: Any, wait_for: Any
) -> None:
    settings, backend = indexed
    stage = AlertStage(settings, backend)
    await stage.start()
    try:
        started = time.monotonic()
        await save_alert(settings, new_alert("vienna", "vienna"))

        async def present() -> bool:
            return "vienna" in stage.matcher.alerts

        await wait_for(present, 30, "the new alert in the worker's matcher")
        print(f"applied after {time.monotonic() - started:.2f} s")
        docs = [a for a in alerts_corpus.articles if a.id in {"eq001", "eq012", "eq003"}]
        records = await stage.records(docs, [d.id for d in docs])
        found = sorted(json.loads(value)["article"]["id"] for _, value in records)
        assert found == ["eq001", "eq012"]
        record = json.loads(records[0][1])
        assert record["why"]["terms"] == ["vienna"] and record["query"] == "vienna"
        assert set(await load_alerts(settings)) == {"vienna"}
        await remove_alert(settings, "vienna")

        async def gone() -> bool:
            return "vienna" not in stage.matcher.alerts

        await wait_for(gone, 30, "the removed alert gone from the matcher")
        assert await stage.records(docs, [d.id for d in docs]) == []
        assert await load_alerts(settings) == {}
    finally:
        await stage.stop()


async def test_webhooks_signed_retried_dead_lettered_and_isolated(
    indexed: Any, alerts_corpus: Any, wait_for: Any, read_topic: Any
) -> None:
    settings, backend = indexed
    received: list[tuple[str, float, dict[str, str], bytes]] = []
    calls: dict[str, int] = {}

    async def hook(request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        calls[kind] = calls.get(kind, 0) + 1
        body = await request.read()
        if kind == "broken":
            return web.Response(status=500)
        if kind == "slow":
            await asyncio.sleep(5)
        received.append((kind, time.monotonic(), dict(request.headers), body))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{kind}", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}"

    alerts = {
        kind: new_alert(kind, "paris", webhook=f"{base}/{kind}", allow_private=True)
        for kind in ("good", "broken", "slow")
    }
    stage = AlertStage(settings, backend)
    for alert in alerts.values():
        await save_alert(settings, alert)
    await stage.start()
    delivery = Delivery(settings)
    stop = asyncio.Event()
    runner_task = asyncio.create_task(delivery.run(stop))
    try:

        async def loaded() -> bool:
            return len(stage.matcher.alerts) == 3 and len(delivery.alerts) == 3

        await wait_for(loaded, 30, "alerts loaded")
        docs = [a for a in alerts_corpus.articles if a.id in {"eq005", "eq016", "eq017"}]
        records = await stage.records(docs, [d.id for d in docs])
        assert len(records) == 9
        producer = make_producer(settings)
        await start_client(producer, bootstrap(settings))
        sent_at = time.monotonic()
        await send_all(producer, settings.topic_alerts, records)
        await producer.stop()

        async def good_done() -> bool:
            return sum(1 for r in received if r[0] == "good") == 3

        await wait_for(good_done, 30, "the good webhook's three deliveries", every=0.1)
        good_seconds = max(t for kind, t, _, _ in received if kind == "good") - sent_at
        # The broken (500) and slow (timeout) receivers are still being retried meanwhile.
        assert delivery.dead < 6
        dead = await read_topic(bootstrap(settings), settings.topic_alerts_dead, 6, limit=90)
        reasons = {r["record"]["alert"]: r["reason"] for r in dead}
        assert set(reasons) == {"broken", "slow"}
        assert "HTTP 500 after 3 tries" in reasons["broken"]
        assert "after 3 tries" in reasons["slow"] and calls["broken"] >= 3
        print(f"good delivered {good_seconds:.2f} s after send while others failed")
        for kind, _, sent_headers, body in received:
            # (the slow receiver finishes its requests after the client gave up on them)
            assert verify(alerts[kind].secret, body, sent_headers[SIGNATURE_HEADER])
            payload = json.loads(body)
            assert payload["match"]["idempotency_key"] == sent_headers[IDEMPOTENCY_HEADER]
            assert payload["match"]["article"]["url"].startswith("https://news.example/")

        async def status_known() -> bool:
            status = await load_status(settings)
            return (
                status.get("broken", {}).get("ok") is False
                and status.get("good", {}).get("ok") is True
            )

        await wait_for(status_known, 30, "delivery status")
        status = await load_status(settings)
        assert "HTTP 500" in status["broken"]["last_error"]
    finally:
        stop.set()
        await runner_task
        await stage.stop()
        await runner.cleanup()


async def test_webhook_url_refused_by_the_ssrf_guard_unless_private_allowed() -> None:
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="loopback"):
        new_alert("x", "paris", webhook="http://127.0.0.1:1/hook")
    with pytest.raises(ConfigError, match="private"):
        new_alert("x", "paris", webhook="http://10.0.0.1/hook")


async def test_a_digest_alert_gets_one_delivery_per_window(
    indexed: Any, alerts_corpus: Any, wait_for: Any
) -> None:
    settings, backend = indexed
    bodies: list[bytes] = []

    async def hook(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/digest", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    alert = new_alert("climate", "climate", webhook=f"http://127.0.0.1:{port}/digest",
                      digest="3s", allow_private=True)  # fmt: skip
    await save_alert(settings, alert)
    stage = AlertStage(settings, backend)
    await stage.start()
    delivery = Delivery(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(delivery.run(stop))
    try:
        docs = [a for a in alerts_corpus.articles if a.id in {"eq016", "eq017", "eq018"}]
        records = await stage.records(docs, [d.id for d in docs])
        assert len(records) == 3
        producer = make_producer(settings)
        await start_client(producer, bootstrap(settings))
        await send_all(producer, settings.topic_alerts, records)
        await producer.stop()

        async def one() -> bool:
            return len(bodies) >= 1

        await wait_for(one, 60, "the digest", every=0.2)
        await asyncio.sleep(1)
        (body,) = bodies
        payload = json.loads(body)
        assert payload["count"] == 3
        assert {m["article"]["id"] for m in payload["digest"]} == {"eq016", "eq017", "eq018"}
    finally:
        stop.set()
        await task
        await stage.stop()
        await runner.cleanup()
