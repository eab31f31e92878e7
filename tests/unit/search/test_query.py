import pytest

from pipeline.errors import ConfigError
from pipeline.search.query import SearchRequest, build_body, facet_field, shape_response


def test_facet_names_map_to_keyword_fields() -> None:
    assert facet_field("person") == "entities.person"
    assert facet_field("places") == "entities.location"
    assert facet_field("topic") == "topics.label"
    assert facet_field("source") == "source.name"
    assert facet_field("entities.misc") == "entities.misc"
    with pytest.raises(ConfigError, match="unknown facet"):
        facet_field("colour")


def test_body_has_query_filters_facets_and_highlight() -> None:
    body = build_body(
        SearchRequest(
            query="Kerry Lavrov",
            facets=("person", "time"),
            filters=("person=John Kerry", "language=en"),
            since="2015-01-01",
        )
    )
    must = body["query"]["bool"]["must"][0]["simple_query_string"]
    assert must["query"] == "Kerry Lavrov" and must["default_operator"] == "and"
    filters = body["query"]["bool"]["filter"]
    assert {"term": {"entities.person": "John Kerry"}} in filters
    assert {"term": {"language": "en"}} in filters
    assert {"range": {"published_at": {"gte": "2015-01-01"}}} in filters
    assert body["aggs"]["person"] == {"terms": {"field": "entities.person", "size": 10}}
    assert "date_histogram" in body["aggs"]["time"]
    assert set(body["highlight"]["fields"]) == {"title", "summary", "body"}


def test_empty_query_matches_all_and_bad_filter_is_clear() -> None:
    assert build_body(SearchRequest())["query"]["bool"]["must"] == [{"match_all": {}}]
    with pytest.raises(ConfigError, match="FIELD=VALUE"):
        build_body(SearchRequest(filters=("person",)))


def test_shape_response_follows_the_json_contract() -> None:
    request = SearchRequest(query="x", facets=("person",))
    response = {
        "hits": {
            "total": {"value": 1, "relation": "eq"},
            "hits": [
                {
                    "_id": "abc",
                    "_source": {"id": "abc", "title": "T", "language": "en", "topics": []},
                    "highlight": {"title": ["**T**"]},
                }
            ],
        },
        "aggregations": {"person": {"buckets": [{"key": "John Kerry", "doc_count": 3}]}},
    }
    result = shape_response(response, request).as_json()
    assert result["total"] == 1
    hit = result["hits"][0]
    assert set(hit) == {
        "id", "url", "title", "published_at", "source", "language", "topics", "entities",
        "highlight",
    }  # fmt: skip
    assert hit["highlight"] == {"title": ["**T**"]}
    assert result["facets"] == {"person": [{"value": "John Kerry", "count": 3}]}
