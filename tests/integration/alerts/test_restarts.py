"""Webhook delivery killed and started again, on the real local Kafka and Elasticsearch:
a pending digest is delivered once with all its matches (and, when the kill came in the
middle of its post, sent again identical, with the same idempotency key); a failing
webhook's count and last error outlive the process that saw them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from pipeline.alerts.model import new_alert
from pipeline.alerts.registry import load_digest_states, load_status, save_alert
from pipeline.alerts.stage import AlertStage
from pipeline.alerts.webhooks import IDEMPOTENCY_HEADER
from pipeline.kafka.client import bootstrap, make_producer, send_all, start_client
from pipeline.kafka.security import client_options
from pipeline.settings import Settings
from pipeline.sinks.engines import open_backend
from pipeline.sinks.indexer import Indexer, install_index

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
WINDOW = 8


class Deliverer:
    """``newswire alerts deliver`` in a child process (SIGKILL is a crash)."""

    def __init__(self, settings: Settings, env: dict[str, str], log_file: Path) -> None:
        self.env = {
            **os.environ, **env, "NEWSWIRE_ALLOW_PRIVATE_FEEDS": "true",
            "NEWSWIRE_WEBHOOK_ATTEMPTS": str(settings.webhook_attempts),
            "NEWSWIRE_WEBHOOK_BACKOFF": str(settings.webhook_backoff),
            "NEWSWIRE_WEBHOOK_TIMEOUT": str(settings.webhook_timeout),
        }  # fmt: skip
        self.log_file = log_file
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        with self.log_file.open("ab") as log:
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "pipeline", "alerts", "deliver"],
                    cwd=REPO,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )

    def kill(self) -> None:
        process = self.processes[-1]
        process.send_signal(signal.SIGKILL)
        process.wait(30)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait(30)


@pytest.fixture
def deliverer(env_for: Any) -> Iterator[Callable[[Settings, Path], Deliverer]]:
    """A factory of :class:`Deliverer`; every process they started is killed at the end."""
    made: list[Deliverer] = []

    def make(settings: Settings, log_file: Path) -> Deliverer:
        made.append(Deliverer(settings, env_for(settings), log_file))
        return made[-1]

    yield make
    for one in made:
        one.stop_all()


@pytest.fixture
async def indexed(stack: Any, isolated: Any, alerts_corpus: Any) -> AsyncIterator[Any]:
    settings = isolated(
        stack.settings, "alertrestart", opensearch_url=None, allow_private_feeds=True,
        webhook_attempts=2, webhook_backoff=0.2, webhook_timeout=30.0,
    )  # fmt: skip
    backend = open_backend(settings)
    await install_index(backend, settings.index_alias)
    await Indexer(backend, settings.index_alias, refresh="true").write(alerts_corpus.articles)
    yield settings, backend
    await backend.close()


async def _receiver(handler: Any) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/hook", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/hook"


async def _send(settings: Settings, records: list[tuple[bytes | None, bytes]]) -> None:
    producer = make_producer(settings)
    await start_client(producer, bootstrap(settings))
    try:
        await send_all(producer, settings.topic_alerts, records)
    finally:
        await producer.stop()


async def _committed(settings: Settings, group: str) -> int | None:
    """The delivery group's committed offset on the alerts topic (None: none yet)."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await start_client(admin, bootstrap(settings))
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    except KafkaError:  # no such group yet
        return None
    finally:
        await admin.close()
    found = [m.offset for tp, m in offsets.items() if tp.topic == settings.topic_alerts]
    return max(found) if found else None


async def test_a_pending_digest_outlives_delivery_crashes(
    indexed: Any, alerts_corpus: Any, wait_for: Any, tmp_path: Path, deliverer: Any
) -> None:
    settings, backend = indexed
    requests: list[tuple[str, bytes]] = []
    hang_first = asyncio.Event()
    release = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        requests.append((request.headers[IDEMPOTENCY_HEADER], body))
        if len(requests) == 1:
            hang_first.set()
            with contextlib.suppress(TimeoutError):  # the delivery process is killed meanwhile
                await asyncio.wait_for(release.wait(), 120)
        return web.Response(status=200)

    runner, url = await _receiver(hook)
    alert = new_alert("climate", "climate", webhook=url, digest=f"{WINDOW}s", allow_private=True)
    await save_alert(settings, alert)
    stage = AlertStage(settings, backend)
    await stage.start()
    process = deliverer(settings, tmp_path / "deliver.log")
    group = f"{settings.worker_id}-alerts-delivery"
    try:
        docs = {a.id: a for a in alerts_corpus.articles}
        first = await stage.records([docs["eq016"], docs["eq017"]], ["eq016", "eq017"])
        assert len(first) == 2
        await _send(settings, first)
        process.start()

        async def read() -> bool:  # committed below the two matches held for the window
            return await _committed(settings, group) == 0

        await wait_for(read, 60, "the first process holding the two matches", every=0.3)
        process.kill()  # well before the window ends
        assert requests == []
        third = await stage.records([docs["eq018"]], ["eq018"])
        assert len(third) == 1
        await _send(settings, third)
        process.start()
        await asyncio.wait_for(hang_first.wait(), 90)
        process.kill()  # in the middle of the post: the digest was being sent

        states = await load_digest_states(settings)
        assert states["climate"].sending is not None
        assert states["climate"].sending["count"] == 3
        process.start()

        async def sent_again() -> bool:
            return len(requests) >= 2

        await wait_for(sent_again, 90, "the interrupted digest sent again", every=0.2)
        await asyncio.sleep(WINDOW + 3)  # a second window: nothing more may come
        assert len(requests) == 2, [k for k, _ in requests]
        (key1, body1), (key2, body2) = requests
        assert key1 == key2 and body1 == body2
        payload = json.loads(body2)
        assert payload["count"] == 3
        ids = {m["article"]["id"] for m in payload["digest"]}
        assert ids == {"eq016", "eq017", "eq018"}

        async def delivered() -> bool:
            state = (await load_digest_states(settings)).get("climate")
            return state is not None and state.sending is None and bool(state.delivered)

        await wait_for(delivered, 30, "the digest recorded as delivered")
        process.kill()
        # A process that reads every match again (as after a crash before its offsets
        # were committed: here a new consumer group) sends none of them again.
        again = deliverer(
            settings.model_copy(update={"worker_id": f"{settings.worker_id}-b"}),
            tmp_path / "deliver-b.log",
        )
        again.start()

        async def reread() -> bool:
            return await _committed(settings, f"{settings.worker_id}-b-alerts-delivery") == 3

        await wait_for(reread, 60, "the second group done with the three matches", every=0.3)
        await asyncio.sleep(WINDOW + 2)
        assert len(requests) == 2
    finally:
        release.set()
        await stage.stop()
        await runner.cleanup()


async def test_a_failing_webhook_is_reported_across_restarts(
    indexed: Any, alerts_corpus: Any, wait_for: Any, tmp_path: Path, deliverer: Any
) -> None:
    settings, backend = indexed
    calls: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        calls.append(request.headers[IDEMPOTENCY_HEADER])
        return web.Response(status=503, text="down for maintenance")

    runner, url = await _receiver(hook)
    await save_alert(settings, new_alert("paris", "paris", webhook=url, allow_private=True))
    stage = AlertStage(settings, backend)
    await stage.start()
    process = deliverer(settings, tmp_path / "deliver.log")
    env = process.env
    try:
        docs = {a.id: a for a in alerts_corpus.articles}
        await _send(settings, await stage.records([docs["eq005"]], ["eq005"]))
        process.start()

        async def failing(at_least: int) -> bool:
            status = (await load_status(settings)).get("paris") or {}
            return status.get("ok") is False and int(status.get("failures") or 0) >= at_least

        await wait_for(lambda: failing(2), 60, "two failed tries recorded", every=0.3)

        async def dead_lettered() -> bool:  # so the next process does not read it again
            return await _committed(settings, f"{settings.worker_id}-alerts-delivery") == 1

        await wait_for(dead_lettered, 30, "the failed match committed", every=0.3)
        process.kill()
        listed = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pipeline", "alerts", "list", "--json",
            cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, _ = await asyncio.wait_for(listed.communicate(), 120)
        assert listed.returncode == 0
        (row,) = json.loads(stdout)
        assert row["name"] == "paris" and row["delivery"]["ok"] is False
        assert row["delivery"]["last_error"] == "HTTP 503"
        # a new process goes on counting from what the last one recorded
        await _send(settings, await stage.records([docs["eq016"]], ["eq016"]))
        process.start()
        await wait_for(lambda: failing(4), 60, "the count carried over", every=0.3)
        status = (await load_status(settings))["paris"]
        assert status["last_error"] == "HTTP 503" and status["failures"] >= 4
        assert len(calls) >= 4
    finally:
        await stage.stop()
        await runner.cleanup()
