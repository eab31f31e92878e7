"""``newswire reprocess`` as a real process, SIGKILLed half way during live ingest and run
again: it resumes from its checkpoint (does not start over) and ends with every document
at the new enrichment version, counts equal, no duplicate, the newest revisions kept."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.enrich.enricher import Enricher
from pipeline.enrich.recogniser import make_recogniser
from pipeline.models import EnrichedArticle
from pipeline.sinks.backend import SearchBackend
from pipeline.sinks.engines import open_backend
from pipeline.sinks.generations import rollover
from pipeline.sinks.indexer import Indexer, install_index

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
OLD = 3000
T0 = datetime(2025, 3, 1, tzinfo=UTC)
BODY = "John Kerry met Sergei Lavrov in Moscow on Tuesday to discuss the talks in Geneva."


def _article(n: int, revision: int = 0, version: str = "ev-old") -> EnrichedArticle:
    return EnrichedArticle(
        id=f"k{n:05d}",
        title=f"Talks {n} revision {revision}",
        body=BODY,
        fetched_at=T0 + timedelta(minutes=n, seconds=revision),
        enrichment_version=version,
    )


def _done(checkpoint: Path) -> int:
    try:
        return int(json.loads(checkpoint.read_text(encoding="utf-8")).get("done", 0))
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


async def _count(backend: SearchBackend, alias: str, query: dict[str, Any]) -> int:
    await backend.refresh(alias)
    return await backend.count(alias, {"query": query})


async def _start(settings: Any, env_for: Any, checkpoint: Path, log: Path) -> Any:
    env = {**os.environ, **env_for(settings)}
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pipeline",
            "reprocess",
            "--stale",
            "--checkpoint",
            str(checkpoint),
            "--json",
            cwd=REPO,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=out,
        )


async def test_reprocess_process_killed_half_way_resumes_from_its_checkpoint(
    stack: Any, isolated: Any, env_for: Any, corenlp_url: str, tmp_path: Path
) -> None:
    settings = isolated(stack.settings, "reprocli", opensearch_url=None, corenlp_url=corenlp_url)
    alias = settings.index_alias
    backend = open_backend(settings)
    checkpoint = tmp_path / "reprocess.json"
    log = tmp_path / "reprocess.log"
    try:
        await install_index(backend, alias, settings)
        writer = Indexer(backend, alias, refresh="true")
        for start in range(0, OLD, 500):
            if start == OLD // 2:
                await rollover(backend, alias, {}, force=True)  # two generations
            await writer.write([_article(n) for n in range(start, start + 500)])
        current = Enricher(recogniser=make_recogniser(settings)).version  # the child's too
        live = Indexer(backend, alias, refresh="true")
        revised: dict[int, int] = {}
        stop_feeding = asyncio.Event()
        new_ids: list[str] = []

        async def ingest() -> None:
            """The worker meanwhile: new articles, and newer revisions of old ones."""
            step = 0
            while not stop_feeding.is_set():
                new = [_article(100_000 + step * 5 + i, version=current) for i in range(5)]
                new_ids.extend(a.id for a in new)
                n = (step * 211) % OLD
                revised[n] = revised.get(n, 0) + 1
                await live.write([*new, _article(n, revised[n], version=current)])
                step += 1
                await asyncio.sleep(0.1)

        feeding = asyncio.create_task(ingest())
        first = await _start(settings, env_for, checkpoint, log)
        # Killed once its checkpoint has moved past a third, well before the end.
        for _ in range(6000):
            if _done(checkpoint) >= OLD // 3 or first.returncode is not None:
                break
            await asyncio.sleep(0.02)
        assert first.returncode is None, log.read_text(errors="replace")[-3000:]
        first.send_signal(signal.SIGKILL)
        assert await first.wait() == -signal.SIGKILL
        killed_at = _done(checkpoint)
        assert OLD // 3 <= killed_at < OLD - 256, killed_at

        second = await _start(settings, env_for, checkpoint, log)
        stdout, _ = await asyncio.wait_for(second.communicate(), 600)
        assert second.returncode == 0, log.read_text(errors="replace")[-3000:]
        stop_feeding.set()
        await feeding
        report = json.loads(stdout)
        # It resumed at the checkpoint the killed run left, and did not redo that part.
        assert report["resumed_from"] == killed_at
        assert report["done"] - report["resumed_from"] <= OLD - killed_at
        assert report["failed"] == [] and report["rejected"] == []
        assert report["enrichment_version"] == current

        total = OLD + len(new_ids)
        assert await _count(backend, alias, {"match_all": {}}) == total  # 0 lost, 0 added
        stale = {"bool": {"must_not": [{"term": {"enrichment_version": current}}]}}
        assert await _count(backend, alias, stale) == 0
        dupes = await backend.search(
            alias,
            {"size": 0, "aggs": {"i": {"terms": {"field": "id", "min_doc_count": 2}}}},
        )
        assert dupes["aggregations"]["i"]["buckets"] == []
        # Re-enriched for real: the stored articles had no entities; the live revisions
        # carry none either (they were written at the current version, not reprocessed).
        kerry = {"term": {"entities.person": "John Kerry"}}
        assert await _count(backend, alias, kerry) == OLD - len(revised)
        ids = [f"k{n:05d}" for n in revised]
        answer = await backend.search(
            alias, {"query": {"ids": {"values": ids}}, "size": len(ids), "_source": ["title"]}
        )
        titles = {h["_id"]: h["_source"]["title"] for h in answer["hits"]["hits"]}
        for n, revision in revised.items():
            assert titles[f"k{n:05d}"] == f"Talks {n} revision {revision}"
    finally:
        for name in await backend.alias_indices(alias):
            await backend.delete_index(name)
        await backend.close()
