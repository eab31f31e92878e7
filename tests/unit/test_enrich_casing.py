"""ALL-CAPS re-casing for NER, datelines and country names (no NER model needed)."""

from __future__ import annotations

import pytest

from pipeline.enrich.casing import is_shouting, recase_if_shouting
from pipeline.enrich.entities import place_mentions
from pipeline.enrich.language import detect_language, evidence_text, normalize_hint

pytest.importorskip("spacy", reason="the common-word lists come from the spaCy model")


@pytest.mark.parametrize(
    "text",
    [
        "CRICKET - LEICESTERSHIRE TAKE OVER AT TOP AFTER INNINGS VICTORY .",
        "US TROOPS ENTER BAGHDAD\nThe troops came.",
        "Ordinary text with NATO in it.",
        "MOSCOW (Reuters) - Kerry arrived.",
        "ÉCOLE ﬁ STRASSE İSTANBUL",  # characters whose case change alters the length
    ],
)
def test_recase_keeps_length(text: str) -> None:
    assert len(recase_if_shouting(text)) == len(text)


def test_recase_shouting_headline() -> None:
    out = recase_if_shouting("US TROOPS ENTER BAGHDAD AS NATO WATCHES")
    assert out.startswith("US ")  # known abbreviation kept
    assert "Baghdad" in out and "enter" in out and "NATO" in out
    assert (
        recase_if_shouting("Normal sentence, with an ACRONYM.")
        == "Normal sentence, with an ACRONYM."
    )


def test_recase_dateline() -> None:
    assert recase_if_shouting("MOSCOW (Reuters) - Kerry arrived.").startswith("Moscow (Reuters)")
    assert is_shouting("KERRY IN MOSCOW") and not is_shouting("Kerry in Moscow")


def test_place_mentions_datelines_and_countries() -> None:
    text = (
        "LONDON, Dec 15 (Reuters) - Germany and the Bank of England met the England Cricket Board."
    )
    found = place_mentions(text, "body", [])
    assert [(m.name, m.type) for m in found] == [("LONDON", "location"), ("Germany", "location")]
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
