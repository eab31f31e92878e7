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


def no_handler(exc: Exception) -> bool:
    """Whether the node does not serve the path at all (an API it lacks)."""
    return getattr(exc, "status_code", None) in (400, 404, 405) and "no handler found" in str(exc)


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

    async def has_analyzer(self, name: str, index: str | None = None) -> bool:
        try:
            await self.client.indices.analyze(
                index=index, body={"analyzer": name, "text": "running"}
            )
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

    @_translated
    async def alias_indices(self, alias: str) -> dict[str, bool]:
        """The concrete indices behind ``alias``, each with whether it is the write index."""
        try:
            body = await self.client.indices.get_alias(name=alias)
        except NotFoundError:
            return {}
        return {
            index: bool(meta.get("aliases", {}).get(alias, {}).get("is_write_index", False))
            for index, meta in body.items()
        }

    @_translated
    async def index_stats(self, alias: str) -> list[dict[str, Any]]:
        rows = await self.client.cat.indices(
            index=alias,
            params={
                "format": "json",
                "h": "index,docs.count,pri.store.size,creation.date",
                "bytes": "b",  # sizes as integers, as list_generations reads them
            },
        )
        return [dict(row) for row in rows]

    @_translated
    async def rollover(
        self, alias: str, conditions: dict[str, Any], dry_run: bool = False
    ) -> dict[str, Any]:
        body = {"conditions": conditions} if conditions else None
        return dict(
            # opensearch-py sends a Python bool as "False", which OpenSearch refuses (400).
            await self.client.indices.rollover(
                alias=alias, body=body, params={"dry_run": "true" if dry_run else "false"}
            )
        )

    @_translated
    async def delete_index(self, name: str) -> None:
        await self.client.indices.delete(index=name)

    @_translated
    async def get_mapping(self, index: str) -> dict[str, dict[str, Any]]:
        body = await self.client.indices.get_mapping(index=index)
        return {name: dict(meta.get("mappings", {})) for name, meta in body.items()}

    async def get_index_template(self, name: str) -> dict[str, Any] | None:
        return await self._template(self.client.indices.get_index_template, name, "index_template")

    async def get_component_template(self, name: str) -> dict[str, Any] | None:
        return await self._template(
            self.client.cluster.get_component_template, name, "component_template"
        )

    async def _template(self, fetch: Any, name: str, kind: str) -> dict[str, Any] | None:
        """The template ``name`` of ``kind`` (``index_template``/``component_template``),
        None when it does not exist."""
        try:
            body = await fetch(name=name)
        except NotFoundError:
            return None
        except TransportError as exc:
            raise _wrap(exc) from exc
        templates = body.get(f"{kind}s", [])
        return dict(templates[0][kind]) if templates else None

    async def open_pit(self, index: str, keep_alive: str) -> str:
        """A point in time (``POST /<index>/_search/point_in_time``, OpenSearch 2.4+: not
        Elasticsearch's ``_pit``); a node without it gets a clear error, not a 400."""
        try:
            answer = await self.client.create_pit(index=index, params={"keep_alive": keep_alive})
        except TransportError as exc:
            if no_handler(exc):
                raise SearchBackendError(
                    "this OpenSearch node has no point-in-time API (OpenSearch 2.4 or later "
                    "has it): export and reprocess read through one; upgrade the node"
                ) from exc
            raise _wrap(exc) from exc
        return str(answer["pit_id"])

    @_translated
    async def close_pit(self, pit_id: str) -> None:
        await self.client.delete_pit(body={"pit_id": [pit_id]})

    @_translated
    async def search_pit(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(await self.client.search(body=body))

    @_translated
    async def snapshot_repository(self, name: str, location: str) -> None:
        await self.client.snapshot.create_repository(
            repository=name, body={"type": "fs", "settings": {"location": location}}
        )

    @_translated
    async def create_snapshot(self, repository: str, snapshot: str, indices: str) -> dict[str, Any]:
        return dict(
            await self.client.snapshot.create(
                repository=repository,
                snapshot=snapshot,
                body={"indices": indices, "include_global_state": False},
                params={"wait_for_completion": "true"},
            )
        )

    @_translated
    async def restore_snapshot(
        self, repository: str, snapshot: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        return dict(
            await self.client.snapshot.restore(
                repository=repository,
                snapshot=snapshot,
                body=body,
                params={"wait_for_completion": "true"},
            )
        )

    @_translated
    async def list_snapshots(self, repository: str) -> list[dict[str, Any]]:
        answer = await self.client.snapshot.get(repository=repository, snapshot="_all")
        return [dict(s) for s in answer.get("snapshots", [])]

    async def ilm_status(self) -> dict[str, Any] | None:
        """Always None: OpenSearch has ISM, not ILM (its ``_ilm`` paths do not exist), and
        Newswire does not manage ISM policies: the core-API path rolls over and retires."""
        return None

    async def put_ilm_policy(self, name: str, body: dict[str, Any]) -> None:
        raise SearchBackendError(
            "opensearch has no ILM (it has ISM): Newswire rolls over and retires generations "
            "through the core APIs there (newswire index rollover/retire, the worker's check)"
        )

    @_translated
    async def put_index_settings(self, index: str, body: dict[str, Any]) -> None:
        await self.client.indices.put_settings(index=index, body=body)

    async def close(self) -> None:
        await self.client.close()
