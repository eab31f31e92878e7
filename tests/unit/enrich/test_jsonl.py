"""``enrich_jsonl``: one output line per input line, in order, errors never dropped."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence

import pytest

from pipeline.enrich.enricher import Enricher, count_words
from pipeline.enrich.jsonl import enrich_jsonl, parse_line
from pipeline.models import Enrichment, RawArticle


class FakeEnricher(Enricher):
    """No model: word count only; fails on a body of 'boom'."""

    def enrich(self, articles: Sequence[RawArticle]) -> list[Enrichment]:
        if any(a.body == "boom" for a in articles):
            raise RuntimeError("boom")
        return [Enrichment(language="en", word_count=count_words(a.body or "")) for a in articles]


def _run(lines: list[str], batch_size: int = 2) -> list[dict[str, object]]:
    out = io.StringIO()
    n = enrich_jsonl(lines, out, batch_size=batch_size, enricher=FakeEnricher())
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert n == len(records) == len(lines)
    return records


def test_order_ids_and_errors_kept() -> None:
    lines = [
        json.dumps({"id": "a", "body": "one two"}),
        "{broken",
        json.dumps({"body": "no id here"}),
        json.dumps(["not", "an", "object"]),
        json.dumps({"id": "e", "body": "boom"}),
        json.dumps({"id": "f", "title": "Only a title"}),
        "",
        json.dumps({"id": "h", "body": 5}),
    ]
    records = _run(lines)
    assert [r["id"] for r in records] == ["a", None, None, None, "e", "f", None, "h"]
    assert records[0]["word_count"] == 2 and "error" not in records[0]
    assert "error" in records[1] and records[1]["id"] is None
    assert records[2]["word_count"] == 3
    assert "error" in records[3]
    assert records[4]["error"].startswith("enrichment failed")
    assert "error" not in records[5]
    assert "error" in records[6] and "error" in records[7]
    for key in ("language", "entities", "mentions", "topics", "keywords", "word_count"):
        assert key in records[0]


def test_parse_line_numeric_id_and_hint() -> None:
    given, article = parse_line(json.dumps({"id": 7, "body": "x", "language": "de"}), 1)
    assert given == "7" and article.language_hint == "de"
    with pytest.raises(ValueError, match="title"):
        parse_line(json.dumps({"id": "x"}), 3)


def test_count_words() -> None:
    assert count_words("Bashar al-Assad doesn't go.") == 4


def test_missing_model_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    spacy = pytest.importorskip("spacy")
    from pipeline.enrich import nlp
    from pipeline.errors import MissingDependencyError

    def no_model(*args: object, **kwargs: object) -> None:
        raise OSError("[E050] Can't find model")

    monkeypatch.setattr(spacy, "load", no_model)
    nlp.reset_for_tests()
    try:
        with pytest.raises(MissingDependencyError, match=r"newswire\[nlp\]"):
            nlp.get_nlp()
    finally:
        monkeypatch.undo()
        nlp.reset_for_tests()


def test_enrich_table_shows_feed_text_literally_and_errors_by_line() -> None:
    from rich.console import Console

    from pipeline.cli.render import enrich_table

    records = [
        {
            "id": "a[/b]",
            "language": "en",
            "entities": {"person": ["[link=http://x]Ann[/link]"], "location": ["Moscow"]},
            "topics": [{"code": "medtop:11000000", "label": "politics", "score": 0.9}],
            "keywords": ["talks"],
        },
        {"id": None, "error": "line 2: invalid JSON"},
    ]
    console = Console(record=True, width=200)
    console.print(enrich_table(records))
    text = console.export_text()
    assert "a[/b]" in text and "[link=http://x]Ann[/link]" in text
    assert "Moscow" in text and "politics" in text
    assert "line 2: invalid JSON" in text
