"""The ``newswire`` command line end to end: run, replay, search --json, as a user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
REPO = Path(__file__).resolve().parents[2]


def newswire(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def cli_env(stack: Any, tmp_path: Path, env_for: Any, isolated: Any) -> dict[str, str]:
    """Like a user's shell: no cluster configured, so `run` takes the local-stack path and
    finds the session's stack already up (and, not having started it, leaves it up)."""
    settings = isolated(stack.settings, "cli", worker_web_port=0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")}
    env.update(env_for(settings))
    if stack.local is not None:
        for name in ("kafka_bootstrap", "elasticsearch_url", "opensearch_url"):
            env.pop(f"NEWSWIRE_{name.upper()}", None)
        for name in ("kafka_port", "kafka_controller_port", "search_port", "search_transport_port",
                     "kafka_heap", "search_heap", "corenlp_port"):  # fmt: skip
            env[f"NEWSWIRE_{name.upper()}"] = str(getattr(stack.settings, name))
    env.update(
        NEWSWIRE_SEEDS_DIR=str(REPO / "seeds"),
        NEWSWIRE_FEEDS_FILE=str(tmp_path / "no-feeds.yaml"),
        COLUMNS="200",
    )
    return env


def test_replay_dry_run_prints_jsonl_and_names_bad_files(tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_text("Headline\n\nBody text.")
    (tmp_path / "bad.json").write_text("{nope")
    result = newswire(dict(os.environ), "replay", "--dry-run", str(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["title"] for line in lines] == ["Headline"]
    assert "bad.json" in result.stderr and "invalid JSON" in result.stderr


def test_run_then_search_finds_the_seed_with_its_entities(
    cli_env: dict[str, str], stack: Any
) -> None:
    run = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run"],
        cwd=REPO,
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    try:
        deadline = time.monotonic() + 180
        assert run.stdout is not None
        while time.monotonic() < deadline:
            line = run.stdout.readline()
            if not line:
                break
            output.append(line)
            if "seeds indexed" in line:
                break
        assert any("seeds indexed" in line for line in output), "".join(output[-40:])

        result = newswire(cli_env, "search", "Kerry Lavrov", "--json", "--facet", "person")
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert data["total"] == 1
        hit = data["hits"][0]
        assert hit["title"] == "Kerry in Moscow to push Syria peace plan"
        assert hit["published_at"].startswith("2015-12-15")
        people = set(hit["entities"]["person"])
        assert {"John Kerry", "Sergei Lavrov", "Vladimir Putin", "Bashar al-Assad"} <= people
        assert "Moscow" in hit["entities"]["location"]
        assert hit["topics"] and hit["highlight"]
        assert {"value": "John Kerry", "count": 1} in data["facets"]["person"]

        table = newswire(cli_env, "search", "Kerry Lavrov")
        assert table.returncode == 0 and "Kerry in Moscow" in table.stdout
    finally:
        run.send_signal(signal.SIGTERM)
        try:
            code = run.wait(90)
        except subprocess.TimeoutExpired:
            run.kill()
            raise
    assert code == 0, "".join(output[-40:])
    if stack.local is not None:
        assert stack.local.status().healthy, "run stopped a stack it had not started"


def test_search_reports_a_clear_error_when_nothing_is_configured(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")}
    env["NEWSWIRE_HOME"] = str(tmp_path / "empty-home")
    result = newswire(env, "search", "anything")
    assert result.returncode == 2
    assert "no search engine configured" in result.stderr


def test_servers_that_are_down_get_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")}
    env.update(
        NEWSWIRE_HOME=str(tmp_path),
        NEWSWIRE_KAFKA_BOOTSTRAP="127.0.0.1:1",
        NEWSWIRE_ELASTICSEARCH_URL="http://127.0.0.1:1",
    )
    replayed = newswire(env, "replay", str(REPO / "seeds"))
    assert replayed.returncode == 2
    assert "Kafka at 127.0.0.1:1 is unreachable" in replayed.stderr
    searched = newswire(env, "search", "x")
    assert searched.returncode == 2
    assert "elasticsearch unreachable" in searched.stderr
    for result in (replayed, searched):
        assert "Traceback" not in result.stderr
