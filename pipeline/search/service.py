"""Runs a search against the configured backend."""

from __future__ import annotations

from pipeline.search.query import SearchRequest, SearchResult, build_body, shape_response
from pipeline.settings import Settings
from pipeline.sinks.engines import open_backend


async def search(settings: Settings, request: SearchRequest) -> SearchResult:
    """One search request over the article alias."""
    backend = open_backend(settings)
    try:
        response = await backend.search(settings.index_alias, build_body(request))
    finally:
        await backend.close()
    return shape_response(response, request)
