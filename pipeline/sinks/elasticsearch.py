"""Elasticsearch 9.x connector (the official ``elasticsearch`` client)."""

from __future__ import annotations

from typing import Any

import structlog
from elasticsearch import (
    ApiError,
    AsyncElasticsearch,
    ConnectionError,
    ConnectionTimeout,
    NotFoundError,
    TransportError,
)

from pipeline.errors import RetryableError, SearchBackendError
from pipeline.settings import Settings
from pipeline.sinks.backend import RefreshPolicy, pick_write_index, translate_errors
from pipeline.sinks.connection import elasticsearch_options

log = structlog.get_logger(__name__)


def _wrap(exc: Exception) -> SearchBackendError:
    if isinstance(exc, ConnectionError | ConnectionTimeout):
        return RetryableError(f"elasticsearch unreachable: {exc}")
    if isinstance(exc, ApiError) and (exc.meta.status == 429 or exc.meta.status >= 500):
        retry = exc.meta.headers.get("retry-after") if exc.meta.headers else None
        return RetryableError(f"elasticsearch {exc.meta.status}: {exc}", _seconds(retry))
    return SearchBackendError(f"elasticsearch: {exc}")


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


_translated = translate_errors((ApiError, TransportError), _wrap)


class ElasticsearchBackend:
    """Thin adapter; request bodies come from the shared templates and query builder."""

    engine = "elasticsearch"

    def __init__(self, settings: Settings, url: str) -> None:
        self.url = url
        options = elasticsearch_options(settings, url)
        if options.get("verify_certs") is False:
            log.warning("elasticsearch.tls_unverified", url=url)
        # Several nodes (comma-separated): the client spreads requests over them and sets a
        # node that fails aside for a while, so losing one node of a cluster stops nothing.
        hosts = [part.strip() for part in url.split(",") if part.strip()]
        self.client = AsyncElasticsearch(hosts, **options)

    @_translated
    async def info(self) -> dict[str, Any]:
        """Cluster name and node version from ``nodes.info``: ``GET /`` (``client.info()``,
        ``client.ping()``) is not served by every build (405 on the integ-test-zip)."""
        nodes = (
            await self.client.nodes.info(
                node_id="_local", filter_path="cluster_name,nodes.*.version"
            )
        ).body
        versions = sorted({str(n.get("version")) for n in nodes.get("nodes", {}).values()})
        return {
            "cluster_name": nodes.get("cluster_name"),
            "version": {"number": versions[0] if versions else "?"},
        }

    async def has_analyzer(self, name: str, index: str | None = None) -> bool:
        """Whether the node knows analyzer ``name``. With ``index``, asked of that index
        (the index privilege ``manage`` suffices, which the writer has on its alias);
        without, of the cluster (the cluster privilege ``manage``)."""
        try:
            await self.client.indices.analyze(index=index, analyzer=name, text="running")
        except ApiError as exc:
            if exc.meta.status == 400:
                return False
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
        return dict((await self.client.bulk(operations=operations, refresh=refresh)).body)

    @_translated
    async def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict((await self.client.search(index=index, body=body)).body)

    @_translated
    async def analyze(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict((await self.client.indices.analyze(index=index, body=body)).body)

    @_translated
    async def mtermvectors(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict((await self.client.mtermvectors(index=index, body=body)).body)

    @_translated
    async def mget(self, index: str, ids: list[str]) -> list[dict[str, Any]]:
        """Documents with ``_seq_no``/``_primary_term`` (``found`` False when missing)."""
        return list(dict((await self.client.mget(index=index, body={"ids": ids})).body)["docs"])

    @_translated
    async def msearch(self, index: str, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One response per body, in order (a failed one holds ``error``)."""
        lines: list[dict[str, Any]] = []
        for body in bodies:
            lines += [{}, body]
        return list(
            dict((await self.client.msearch(index=index, searches=lines)).body)["responses"]
        )

    @_translated
    async def write_index(self, alias: str) -> str:
        """The index an alias writes to (its only one, or the one marked for writes)."""
        return pick_write_index(alias, dict((await self.client.indices.get_alias(name=alias)).body))

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
        except (ApiError, TransportError) as exc:
            raise _wrap(exc) from exc

    @_translated
    async def alias_indices(self, alias: str) -> dict[str, bool]:
        """The concrete indices behind ``alias``, each with whether it is the write index."""
        try:
            body = (await self.client.indices.get_alias(name=alias)).body
        except NotFoundError:
            return {}
        return {
            index: bool(meta.get("aliases", {}).get(alias, {}).get("is_write_index", False))
            for index, meta in body.items()
        }

    @_translated
    async def index_stats(self, alias: str) -> list[dict[str, Any]]:
        rows = (
            await self.client.cat.indices(
                index=alias,
                format="json",
                h="index,docs.count,pri.store.size,creation.date",
                bytes="b",
            )
        ).body
        return [dict(row) for row in rows if isinstance(row, dict)]

    @_translated
    async def rollover(
        self, alias: str, conditions: dict[str, Any], dry_run: bool = False
    ) -> dict[str, Any]:
        answer = await self.client.indices.rollover(
            alias=alias, conditions=conditions or None, dry_run=dry_run
        )
        return dict(answer.body)

    @_translated
    async def delete_index(self, name: str) -> None:
        await self.client.indices.delete(index=name)

    @_translated
    async def get_mapping(self, index: str) -> dict[str, dict[str, Any]]:
        body = (await self.client.indices.get_mapping(index=index)).body
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
            body = (await fetch(name=name)).body
        except NotFoundError:
            return None
        except (ApiError, TransportError) as exc:
            raise _wrap(exc) from exc
        templates = body.get(f"{kind}s", [])
        return dict(templates[0][kind]) if templates else None

    @_translated
    async def open_pit(self, index: str, keep_alive: str) -> str:
        answer = await self.client.open_point_in_time(index=index, keep_alive=keep_alive)
        return str(answer["id"])

    @_translated
    async def close_pit(self, pit_id: str) -> None:
        await self.client.close_point_in_time(id=pit_id)

    @_translated
    async def search_pit(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict((await self.client.search(body=body)).body)

    @_translated
    async def snapshot_repository(self, name: str, location: str) -> None:
        await self.client.snapshot.create_repository(
            name=name, repository={"type": "fs", "settings": {"location": location}}
        )

    @_translated
    async def create_snapshot(self, repository: str, snapshot: str, indices: str) -> dict[str, Any]:
        answer = await self.client.snapshot.create(
            repository=repository,
            snapshot=snapshot,
            indices=indices,
            include_global_state=False,
            wait_for_completion=True,
        )
        return dict(answer.body)

    @_translated
    async def restore_snapshot(
        self, repository: str, snapshot: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        answer = await self.client.snapshot.restore(
            repository=repository, snapshot=snapshot, wait_for_completion=True, **body
        )
        return dict(answer.body)

    @_translated
    async def list_snapshots(self, repository: str) -> list[dict[str, Any]]:
        answer = await self.client.snapshot.get(repository=repository, snapshot="_all")
        return [dict(s) for s in answer.body.get("snapshots", [])]

    async def ilm_status(self) -> dict[str, Any] | None:
        """``GET _ilm/status``, or None where the build has no ILM module (the integ-test
        zip answers 400/404/405/500 to a path it does not serve). Unreachable still raises."""
        try:
            return dict((await self.client.ilm.get_status()).body)
        except ApiError as exc:
            if exc.meta.status in (400, 404, 405, 410, 500, 501):
                log.info("elasticsearch.no_ilm", status=exc.meta.status)
                return None
            if exc.meta.status in (401, 403):
                log.warning(
                    "elasticsearch.ilm_status_forbidden",
                    status=exc.meta.status,
                    consequence="taken as no ILM: Newswire rolls over itself; give this user "
                    "the cluster privilege read_ilm (deploy/k8s/setup-job.yaml does)",
                )
                return None
            raise _wrap(exc) from exc
        except TransportError as exc:
            raise _wrap(exc) from exc

    @_translated
    async def put_ilm_policy(self, name: str, body: dict[str, Any]) -> None:
        await self.client.ilm.put_lifecycle(name=name, policy=body["policy"])

    @_translated
    async def put_index_settings(self, index: str, body: dict[str, Any]) -> None:
        await self.client.indices.put_settings(index=index, settings=body)

    async def close(self) -> None:
        await self.client.close()
