"""``newswire alerts``, ``story``, ``trends`` and ``search --stories`` end to end, as a user
would type them, against the session's Kafka and Elasticsearch."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeline.sinks.engines import open_backend
from pipeline.sinks.indexer import Indexer, install_index
from pipeline.sinks.stories import StoryWriter, install_stories_index
from pipeline.sinks.story_docs import item_of

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
REPO = Path(__file__).resolve().parents[2]


def newswire(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=REPO, env=env, capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture
def cli_env(stack: Any, env_for: Any, isolated: Any, alerts_corpus: Any) -> dict[str, str]:
    """A shell with the session's servers and an index holding the corpus (dated now, so
    the back-test's window holds it) and its stories."""
    settings = isolated(stack.settings, "clialerts", opensearch_url=None)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")}
    env.update(env_for(settings))
    env.update(NEWSWIRE_KAFKA_BOOTSTRAP=stack.kafka_bootstrap,
               NEWSWIRE_ELASTICSEARCH_URL=stack.search_url, COLUMNS="200")  # fmt: skip

    async def load() -> None:
        backend = open_backend(settings)
        try:
            await install_index(backend, settings.index_alias)
            await install_stories_index(backend, settings.story_index)
            from pipeline.models import utcnow

            docs = [a.model_copy(update={"published_at": utcnow()}) for a in alerts_corpus.articles]
            docs = [d.model_copy(update={"cluster_id": "eq000"}) if d.id in {"eq000", "eq016"}
                    else d for d in docs]  # fmt: skip
            await Indexer(backend, settings.index_alias, refresh="true").write(docs)
            items = [i for i in (item_of(d) for d in docs) if i is not None]
            await StoryWriter(backend, settings.story_index).update(items)
            await backend.refresh(settings.story_index)
        finally:
            await backend.close()

    asyncio.run(load())
    return env


def test_alerts_commands_story_trends_and_collapsed_search(cli_env: dict[str, str]) -> None:
    bad = newswire(cli_env, "alerts", "add", "bad", "--query", 'kerry "peace talks')
    assert bad.returncode == 2
    assert "invalid query at position 6" in bad.stderr and "unclosed quote" in bad.stderr

    added = newswire(cli_env, "alerts", "add", "kerry", "--query", "kerry",
                     "--filter", "language=en", "--json")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["filters"] == ["language=en"]
    again = newswire(cli_env, "alerts", "add", "kerry", "--query", "lavrov")
    assert again.returncode == 2 and "exists" in again.stderr

    listed = json.loads(newswire(cli_env, "alerts", "list", "--json").stdout)
    assert [row["name"] for row in listed] == ["kerry"] and "secret" not in listed[0]
    shown = json.loads(newswire(cli_env, "alerts", "show", "kerry", "--secret", "--json").stdout)
    assert len(shown["secret"]) == 64

    tested = json.loads(newswire(cli_env, "alerts", "test", "kerry", "--json").stdout)
    assert tested["total"] == 4  # the same as `search kerry --filter language=en`
    search = json.loads(
        newswire(cli_env, "search", "kerry", "--filter", "language=en", "--json").stdout
    )
    assert {h["id"] for h in tested["hits"]} == {h["id"] for h in search["hits"]}
    table = newswire(cli_env, "alerts", "list")
    assert "kerry" in table.stdout

    removed = newswire(cli_env, "alerts", "remove", "kerry")
    assert removed.returncode == 0, removed.stderr
    assert json.loads(newswire(cli_env, "alerts", "list", "--json").stdout) == []

    story = json.loads(newswire(cli_env, "story", "eq000", "--json").stdout)
    assert story["article_count"] == 2 and story["first_source"] == "BBC"
    assert "Timeline" in newswire(cli_env, "story", "eq000").stdout.title()
    collapsed = json.loads(newswire(cli_env, "search", "kerry", "--stories", "--json").stdout)
    assert collapsed["total"] == 4 and collapsed["stories"] == 3
    trends = json.loads(
        newswire(cli_env, "trends", "--facet", "location", "--min-count", "2", "--json").stdout
    )
    assert {"value", "count", "expected", "score"} <= set(trends[0])
