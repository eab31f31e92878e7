"""Term profiles derived from the IPTC Media Topic vocabulary (pure logic)."""

from __future__ import annotations

from workshop.builders.iptc_terms import ATTRIBUTION, derive, label_terms

ROWS = [
    {"code": "medtop:15000000", "label": "sport", "top": "medtop:15000000", "depth": 1},
    {"code": "medtop:1", "label": "pole vault (athletics)", "top": "medtop:15000000", "depth": 3},
    {"code": "medtop:2", "label": "transfer market", "top": "medtop:15000000", "depth": 3},
    {"code": "medtop:04000000", "label": "economy", "top": "medtop:04000000", "depth": 1},
    {"code": "medtop:3", "label": "market and exchange", "top": "medtop:04000000", "depth": 2},
    {"code": "medtop:4", "label": "transfer market", "top": "medtop:04000000", "depth": 3},
]


def test_label_terms_split_coordinations_and_drop_parentheses() -> None:
    assert label_terms("Economy, business and finance") == [
        "economy, business and finance",
        "economy",
        "business",
        "finance",
    ]
    assert label_terms("pole vault (athletics)") == ["pole vault"]


def test_terms_under_two_top_topics_are_left_out() -> None:
    data = derive(ROWS)
    assert data["attribution"] == ATTRIBUTION and "CC BY 4.0" in ATTRIBUTION
    assert data["topics"]["medtop:15000000"]["w2"] == ["pole vault"]
    assert "transfer market" not in data["topics"]["medtop:04000000"]["w2"]
    assert "exchange" in data["topics"]["medtop:04000000"]["w2"]
