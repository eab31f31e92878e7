"""``newswire index / export / reprocess`` end to end, as a user runs them, against the
session's Elasticsearch and CoreNLP."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.models import EnrichedArticle
from pipeline.sinks.engines import open_backend
from pipeline.sinks.generations import rollover
from pipeline.sinks.indexer import Indexer, install_index

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
REPO = Path(__file__).resolve().parents[2]
TOTAL = 1200


def newswire(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


async def test_index_export_reprocess_retire_from_the_command_line(
    stack: Any, isolated: Any, env_for: Any, corenlp_url: str, tmp_path: Path
) -> None:
    settings = isolated(stack.settings, "archive-cli", opensearch_url=None)
    backend = open_backend(settings)
    await install_index(backend, settings.index_alias, settings)
    indexer = Indexer(backend, settings.index_alias)
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    for half in (0, 1):
        await indexer.write(
            [
                EnrichedArticle(
                    id=f"cli{n:05d}",
                    title=f"Kerry talks {n}",
                    body="John Kerry met Sergei Lavrov in Moscow.",
                    fetched_at=t0 + timedelta(minutes=n),
                    enrichment_version="ev-old",
                )
                for n in range(half * TOTAL // 2, (half + 1) * TOTAL // 2)
            ]
        )
        if half == 0:
            await rollover(backend, settings.index_alias, {}, force=True)
    await backend.refresh(settings.index_alias)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")}
    env.update(env_for(settings), NEWSWIRE_CORENLP_URL=corenlp_url, NEWSWIRE_HOME=str(tmp_path))
    try:
        listed = newswire(env, "index", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        generations = json.loads(listed.stdout)
        assert [g["docs"] for g in generations] == [TOTAL // 2, TOTAL // 2]
        assert [g["write"] for g in generations] == [False, True]

        exported = newswire(env, "export", "--format", "csv", "--fields", "id,title")
        assert exported.returncode == 0, exported.stderr
        rows = list(csv.reader(io.StringIO(exported.stdout)))
        assert rows[0] == ["id", "title"] and len(rows) == TOTAL + 1
        assert f"exported {TOTAL:,}/{TOTAL:,}" in exported.stderr  # progress on stderr

        redone = newswire(env, "reprocess", "--stale", "--json")
        assert redone.returncode == 0, redone.stderr
        report = json.loads(redone.stdout)
        assert report["done"] == report["rewritten"] == TOTAL and report["failed"] == []
        await backend.refresh(settings.index_alias)
        stale = {"query": {"term": {"enrichment_version": "ev-old"}}}
        assert await backend.count(settings.index_alias, stale) == 0
        kerry = {"query": {"term": {"entities.person": "John Kerry"}}}
        assert await backend.count(settings.index_alias, kerry) == TOTAL
        again = json.loads(newswire(env, "reprocess", "--stale", "--json").stdout)
        assert again["selected"] == again["done"] == 0  # nothing left at an older version

        rolled = json.loads(newswire(env, "index", "rollover", "--now", "--json").stdout)
        assert rolled["rolled_over"] is True
        env["NEWSWIRE_INDEX_RETENTION_DAYS"] = "30"
        retired = newswire(env, "index", "retire", "--json")
        assert retired.returncode == 0, retired.stderr
        assert len(json.loads(retired.stdout)["retired"]) == 2  # 2025 articles, never the write
        await backend.refresh(settings.index_alias)
        assert await backend.count(settings.index_alias) == 0
    finally:
        for name in await backend.alias_indices(settings.index_alias):
            await backend.delete_index(name)
        await backend.close()
