"""OpenSearch 2.x connector (``opensearch-py``): the optional engine (NEWSWIRE_SEARCH_ENGINE)."""

from __future__ import annotations

from typing import Any

from opensearchpy import AsyncOpenSearch
from opensearchpy.exceptions import (
    ConnectionError,
    ConnectionTimeout,
    NotFoundError,
    RequestError,
    TransportError,
)

from pipeline.errors import RetryableError, SearchBackendError
from pipeline.settings import Settings
from pipeline.sinks.backend import RefreshPolicy, pick_write_index, translate_errors
from pipeline.sinks.connection import opensearch_options


def _wrap(exc: Exception) -> SearchBackendError:
    if isinstance(exc, ConnectionError | ConnectionTimeout):
        return RetryableError(f"opensearch unreachable: {exc}")
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and (status == 429 or status >= 500):
        return RetryableError(f"opensearch {status}: {exc}")
    return SearchBackendError(f"opensearch: {exc}")


_translated = translate_errors((TransportError,), _wrap)


class OpenSearchBackend:
    """Thin adapter; request bodies come from the shared templates and query builder."""

    engine = "opensearch"

    def __init__(self, settings: Settings, url: str) -> None:
        self.url = url
        options = opensearch_options(settings, url)
        self.client = AsyncOpenSearch(hosts=[url], **options)

    @_translated
    async def info(self) -> dict[str, Any]:
        return dict(await self.client.info())

    async def has_analyzer(self, name: str) -> bool:
        try:
            await self.client.indices.analyze(body={"analyzer": name, "text": "running"})
        except RequestError:
            return False
        except TransportError as exc:
            raise _wrap(exc) from exc
        return True

    @_translated
    async def put_component_template(self, name: str, body: dict[str, Any]) -> None:
        await self.client.cluster.put_component_template(name=name, body=body)

    @_translated
    async def put_index_template(self, name: str, body: dict[str, Any]) -> None:
        await self.client.indices.put_index_template(name=name, body=body)

    @_translated
    async def alias_exists(self, alias: str) -> bool:
        return bool(await self.client.indices.exists_alias(name=alias))

    @_translated
    async def create_index(self, name: str, body: dict[str, Any]) -> None:
        await self.client.indices.create(index=name, body=body)

    @_translated
    async def put_mapping(self, index: str, body: dict[str, Any]) -> None:
        await self.client.indices.put_mapping(index=index, body=body)

    @_translated
    async def bulk(
        self, operations: list[dict[str, Any]], refresh: RefreshPolicy = "false"
    ) -> dict[str, Any]:
        return dict(await self.client.bulk(body=operations, refresh=refresh))

    @_translated
    async def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(await self.client.search(index=index, body=body))

    @_translated
    async def analyze(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(await self.client.indices.analyze(index=index, body=body))

    @_translated
    async def mtermvectors(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(await self.client.mtermvectors(index=index, body=body))

    @_translated
    async def mget(self, index: str, ids: list[str]) -> list[dict[str, Any]]:
        """Documents with ``_seq_no``/``_primary_term`` (``found`` False when missing)."""
        return list(dict(await self.client.mget(index=index, body={"ids": ids}))["docs"])

    @_translated
    async def msearch(self, index: str, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One response per body, in order (a failed one holds ``error``)."""
        lines: list[dict[str, Any]] = []
        for body in bodies:
            lines += [{}, body]
        return list(dict(await self.client.msearch(index=index, body=lines))["responses"])

    @_translated
    async def write_index(self, alias: str) -> str:
        """The index an alias writes to (its only one, or the one marked for writes)."""
        return pick_write_index(alias, dict(await self.client.indices.get_alias(name=alias)))

    @_translated
    async def count(self, index: str, body: dict[str, Any] | None = None) -> int:
        return int((await self.client.count(index=index, body=body))["count"])

    @_translated
    async def refresh(self, index: str) -> None:
        await self.client.indices.refresh(index=index)

    async def get_source(self, index: str, doc_id: str) -> dict[str, Any] | None:
        try:
            return dict((await self.client.get(index=index, id=doc_id))["_source"])
        except NotFoundError:
            return None
        except TransportError as exc:
            raise _wrap(exc) from exc

    async def close(self) -> None:
        await self.client.close()
