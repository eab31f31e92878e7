"""Export formatting (pure): dotted fields, CSV cells, the page request."""

from __future__ import annotations

import pytest

from pipeline.errors import ConfigError
from pipeline.search.export import csv_cell, parse_fields, pick, project
from pipeline.search.scan import article_query, page_body

DOC = {
    "id": "a1",
    "source": {"name": "BBC"},
    "topics": [{"label": "politics"}, {"label": "economy"}],
    "entities": {"person": ["John Kerry", "Ban Ki-moon"]},
}


def test_dotted_paths_reach_into_objects_and_lists_of_objects() -> None:
    assert pick(DOC, "source.name") == "BBC"
    assert pick(DOC, "topics.label") == ["politics", "economy"]
    assert pick(DOC, "missing.path") is None
    assert project(DOC, ["id", "source.name"]) == {"id": "a1", "source.name": "BBC"}


def test_csv_cells() -> None:
    assert csv_cell(["John Kerry", "Ban Ki-moon"]) == "John Kerry; Ban Ki-moon"
    assert csv_cell(None) == "" and csv_cell(3) == "3"
    assert csv_cell({"b": 1, "a": 2}) == '{"a": 2, "b": 1}'


def test_fields_option() -> None:
    assert parse_fields("id, title,source.name") == ["id", "title", "source.name"]
    assert parse_fields(None) is None
    with pytest.raises(ConfigError):
        parse_fields(" , ")


def test_pages_use_a_point_in_time_and_search_after_never_from() -> None:
    query = article_query("kerry", filters=["person=John Kerry"], since="2025-01-01")
    body = page_body("pit-1", query, ["id"], ["a9"], size=500)
    assert body["pit"]["id"] == "pit-1" and body["search_after"] == ["a9"]
    assert body["sort"] == [{"id": "asc"}] and "from" not in body and body["size"] == 500
    filters = query["bool"]["filter"]
    assert {"term": {"entities.person": "John Kerry"}} in filters
    assert "search_after" not in page_body("pit-1", query, True, None)
