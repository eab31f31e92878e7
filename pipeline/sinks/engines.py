"""Which search engine to talk to, and a connected client for it.

The factory lives apart from the interface (:mod:`pipeline.sinks.backend`) so that the two
backends import the interface and this module imports them: the dependency goes one way.
The client libraries load lazily, only the configured engine's.
"""

from __future__ import annotations

from pipeline.errors import ConfigError
from pipeline.settings import Settings
from pipeline.sinks.backend import SearchBackend


def search_target(settings: Settings) -> tuple[str, str]:
    """(engine, url): the URL configured for an engine (``NEWSWIRE_SEARCH_ENGINE`` decides when
    both are set). The local stack's node arrives here as a configured URL: the command
    line resolves it from the stack's endpoints file (pipeline.endpoints)."""
    urls = {"elasticsearch": settings.elasticsearch_url, "opensearch": settings.opensearch_url}
    configured = [engine for engine, url in urls.items() if url]
    if configured:
        engine = settings.search_engine if settings.search_engine in configured else configured[0]
        return engine, str(urls[engine])
    raise ConfigError(
        "no search engine configured: set NEWSWIRE_ELASTICSEARCH_URL (or "
        "NEWSWIRE_OPENSEARCH_URL), or start the local stack with `newswire stack up`"
    )


def open_backend(settings: Settings) -> SearchBackend:
    """A connected client for the configured search engine."""
    engine, url = search_target(settings)
    if engine == "elasticsearch":
        from pipeline.sinks.elasticsearch import ElasticsearchBackend

        return ElasticsearchBackend(settings, url)
    from pipeline.sinks.opensearch import OpenSearchBackend

    return OpenSearchBackend(settings, url)
