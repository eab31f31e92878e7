"""The enrichment version changes with the recogniser, its model, the rules and data."""

from __future__ import annotations

from pathlib import Path

from pipeline.enrich.version import data_fingerprint, enrichment_version, recogniser_identity


def test_every_input_changes_the_version_and_nothing_else_does() -> None:
    base = enrichment_version("corenlp", "3class", rules=1, data="d1")
    assert base == enrichment_version("corenlp", "3class", rules=1, data="d1")
    assert base.startswith("ev-") and len(base) == 19
    others = {
        enrichment_version("spacy", "3class", rules=1, data="d1"),
        enrichment_version("corenlp", "4class", rules=1, data="d1"),
        enrichment_version("corenlp", "3class", rules=2, data="d1"),
        enrichment_version("corenlp", "3class", rules=1, data="d2"),
    }
    assert base not in others and len(others) == 4


def test_a_data_file_edit_is_a_new_fingerprint(tmp_path: Path) -> None:
    (tmp_path / "aliases.yaml").write_text("a: b\n")
    first = data_fingerprint(tmp_path)
    data_fingerprint.cache_clear()
    (tmp_path / "aliases.yaml").write_text("a: c\n")
    assert data_fingerprint(tmp_path) != first
    data_fingerprint.cache_clear()


def test_recogniser_identity_reads_name_and_model() -> None:
    class Recogniser:
        name = "corenlp"
        model = "english.all.3class.distsim.crf.ser.gz"

    assert recogniser_identity(Recogniser()) == ("corenlp", Recogniser.model)
    assert recogniser_identity(object()) == ("unknown", "default")
