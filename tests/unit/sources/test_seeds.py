import json
from datetime import UTC, datetime
from pathlib import Path

from pipeline.settings import Settings
from pipeline.sources.replay import ReplayReport, collect
from pipeline.sources.seeds import SeedError, discover, read_file

REPO = Path(__file__).resolve().parents[3]
SEEDS = REPO / "seeds"


def _read(path: Path) -> list[object]:
    return list(read_file(path, None, 200_000))


def test_seed_text_format_fields() -> None:
    (article,) = _read(next(SEEDS.glob("*.txt")))
    assert not isinstance(article, SeedError)
    assert article.title == "Kerry in Moscow to push Syria peace plan"
    assert article.summary is not None and article.summary.startswith("Video: US Secretary")
    assert article.published_at == datetime(2015, 12, 15, tzinfo=UTC)
    assert article.body is not None and article.body.startswith("Kerry in Moscow\n\nUS Secretary")
    assert "3 min read" not in article.body
    assert article.source.name == "seeds"


def test_seed_id_is_content_hash_and_stable() -> None:
    path = next(SEEDS.glob("*.txt"))
    first, second = _read(path), _read(path)
    assert first[0].id == second[0].id  # type: ignore[union-attr]


def test_plain_text_latin1(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes("Café owner wins\n\nThe café in Zürich won a prize.".encode("latin-1"))
    (article,) = _read(path)
    assert not isinstance(article, SeedError)
    assert article.title == "Café owner wins"
    assert article.body == "The café in Zürich won a prize."
    assert article.published_at is None  # unknown stays unknown


def test_jsonl_bad_lines_reported_by_line_and_rest_kept(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    good = {"url": "https://example.com/x?utm_source=a", "title": "T", "body": "B"}
    path.write_text(
        json.dumps(good)
        + "\n{broken\n"
        + json.dumps({"title": "x", "bogus": 1})
        + "\n"
        + json.dumps({"title": "no id", "body": "body"})
        + "\n"
    )
    items = _read(path)
    errors = [i for i in items if isinstance(i, SeedError)]
    articles = [i for i in items if not isinstance(i, SeedError)]
    assert [e.line for e in errors] == [2, 3]
    assert "invalid JSON" in errors[0].reason and "bogus" in errors[1].reason
    assert articles[0].canonical_url == "https://example.com/x"  # type: ignore[union-attr]
    assert len(articles) == 2


def test_json_array_and_empty_and_binary(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps([{"title": "A", "body": "x"}, 5]))
    (tmp_path / "empty.txt").write_text("\n\n")
    (tmp_path / "bin.txt").write_bytes(b"\x00\x01\x02")
    report = ReplayReport()
    articles = collect([tmp_path], Settings(), report)
    assert [a.title for a in articles] == ["A"]
    reasons = sorted(str(e) for e in report.errors)
    assert len(reasons) == 3
    assert any("bin.txt" in r and "binary" in r for r in reasons)
    assert any("empty.txt" in r and "headline" in r for r in reasons)
    assert any("a.json:2" in r for r in reasons)


def test_oversize_body_is_cut_not_dropped(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_text("Headline\n" + "word " * 1000)
    (article,) = list(read_file(path, None, 100))
    assert not isinstance(article, SeedError)
    assert article.body is not None and len(article.body) == 100


def test_discover_reports_missing_paths(tmp_path: Path) -> None:
    files, errors = discover([tmp_path / "nope", SEEDS])
    assert len(files) == 1 and files[0][1] == "seeds"
    assert "no such file" in errors[0].reason
