"""Dateline places and language evidence (no NER model needed)."""

from __future__ import annotations

import pytest

from pipeline.enrich.entities import place_mentions
from pipeline.enrich.language import detect_language, evidence_text, normalize_hint

pytest.importorskip("lingua", reason="language detection needs lingua: pip install 'newswire[nlp]'")


def test_place_mentions_datelines() -> None:
    text = (
        "LONDON, Dec 15 (Reuters) - Germany and the Bank of England met the England Cricket Board."
    )
    found = place_mentions(text, "body", [])
    assert [(m.name, m.type) for m in found] == [("LONDON", "location")]
    for m in found:
        assert text[m.start : m.end] == m.name


def test_language_names_carry_no_evidence() -> None:
    assert evidence_text("Hendrik Dreekmann ( Germany ) beat Thomas Johansson") == "beat"
    result = detect_language("Hendrik Dreekmann ( Germany ) beat Thomas Johansson ( Sweden )")
    assert not result.reliable
    german = "Der Bundestag hat heute ein neues Gesetz zur Rente beschlossen, sagte die Ministerin."
    assert detect_language(german).code == "de"
    assert detect_language("??? 123", hint="en-GB").code == "en"
    assert normalize_hint("EN_us") == "en" and normalize_hint("english") is None
