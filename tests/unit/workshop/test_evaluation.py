"""Pure parts of the evaluation: short items and the facet-precision rule."""

from __future__ import annotations

from workshop.evaluation import facet_precision, facet_value_error, first_sentence


def test_first_sentence_of_the_first_paragraph() -> None:
    body = "Shares in Sony rose 5% on Monday. Analysts were surprised.\nSecond paragraph."
    assert first_sentence(body) == "Shares in Sony rose 5% on Monday."


def test_type_errors_in_facets() -> None:
    assert facet_value_error("person", "Lib Dem")
    assert facet_value_error("person", "Manchester United")
    assert facet_value_error("person", "Oscar")
    assert facet_value_error("person", "Tony Blair") is None
    assert facet_value_error("organization", "France")
    assert facet_value_error("organization", "Microsoft") is None
    assert facet_value_error("location", "London") is None


def test_value_typed_otherwise_in_most_articles_is_wrong() -> None:
    records = [{"entities": {"organization": ["Chelsea"]}} for _ in range(3)]
    records.append({"entities": {"person": ["Chelsea", "Tony Blair"]}})
    facets = facet_precision(records)
    rows = {r["value"]: r["wrong"] for r in facets["person"]["top"]}
    assert rows["Chelsea"] and rows["Tony Blair"] is None
    assert facets["wrong_total"] == 1
