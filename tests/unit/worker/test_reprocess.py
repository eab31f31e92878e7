"""Reprocess bookkeeping (pure): selections, checkpoints, raw articles from the index."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.models import EnrichedArticle, Entities
from pipeline.worker.reprocess import Checkpoint, Selection, raw_from_source, split


def test_stale_selects_other_enrichment_versions() -> None:
    body = Selection(stale=True).body("ev-new")
    assert {"bool": {"must_not": [{"term": {"enrichment_version": "ev-new"}}]}} in body["bool"][
        "filter"
    ]
    assert Selection().body("ev-new")["bool"]["filter"] == []


def test_a_checkpoint_resumes_the_same_run_only(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    run = Selection(query="kerry", stale=True)
    key = run.key("ev-1")
    assert key != run.key("ev-2") and key != Selection(query="lavrov").key("ev-1")
    Checkpoint(key, ["a0099"], 100).save(path)
    assert Checkpoint.load(path, key) == Checkpoint(key, ["a0099"], 100)
    assert Checkpoint.load(path, "other") == Checkpoint("other")
    assert Checkpoint.load(tmp_path / "none.json", key) == Checkpoint(key)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read the checkpoint"):
        Checkpoint.load(path, key)


def test_the_raw_article_is_taken_back_out_of_a_stored_document() -> None:
    doc = EnrichedArticle(id="a", title="t", entities=Entities(person=["X"])).document()
    raw = raw_from_source(doc)
    assert raw.id == "a" and raw.title == "t" and not hasattr(raw, "entities")


def test_split() -> None:
    assert split(list(range(5)), 2) == [[0, 1, 2], [3, 4]]
    assert split([1], 8) == [[1]] and split([], 3) == []
