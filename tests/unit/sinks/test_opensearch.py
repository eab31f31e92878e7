"""OpenSearch backend: telling an API the node lacks from a bad request (pure)."""

from __future__ import annotations

from opensearchpy.exceptions import NotFoundError, RequestError

from pipeline.sinks.opensearch import no_handler


def test_a_missing_api_is_told_from_a_bad_request() -> None:
    missing = RequestError(400, "no handler found for uri [/a/_search/point_in_time]", {})
    assert no_handler(missing)
    assert not no_handler(RequestError(400, "illegal_argument_exception", {}))
    assert not no_handler(NotFoundError(404, "index_not_found_exception", {}))
