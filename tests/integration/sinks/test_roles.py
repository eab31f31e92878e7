"""The shipped Elasticsearch roles on a real node with security on: the writer installs the
index, writes and rolls over but cannot delete an article index, writes the stories and
trends indices and keeps the story table's day indices; the reader only reads.

The roles are read from the users script of ``deploy/k8s/setup-job.yaml`` (the same bodies
as docker-compose.yml's ``elasticsearch-init``), so this tests what ships; the node is the
``secure_search`` fixture (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from pipeline.provision import install_story_table
from pipeline.sinks.elasticsearch import ElasticsearchBackend
from pipeline.sinks.indexer import IndexSetup, install_index

pytestmark = pytest.mark.integration

ALIAS = "newswire-articles"


async def _install_as(node: Any, user: str) -> IndexSetup:
    settings = node.settings.model_copy(
        update={
            "elasticsearch_username": user,
            "elasticsearch_password": SecretStr(node.passwords[user]),
        }
    )
    backend = ElasticsearchBackend(settings, node.url)
    try:
        return await install_index(backend, ALIAS)
    finally:
        await backend.client.close()


async def _install_story_table(node: Any, user: str) -> None:
    settings = node.settings.model_copy(
        update={
            "elasticsearch_username": user,
            "elasticsearch_password": SecretStr(node.passwords[user]),
        }
    )
    backend = ElasticsearchBackend(settings, node.url)
    try:
        await install_story_table(backend, settings)
    finally:
        await backend.client.close()


def _as(node: Any, user: str) -> httpx.Client:
    return httpx.Client(base_url=node.url, auth=(user, node.passwords[user]), timeout=30)


def test_the_shipped_roles_hold_on_a_secured_node(secure_search: Any) -> None:
    for name in secure_search.passwords:
        with _as(secure_search, name) as client:
            me = client.get("/_security/_authenticate").json()
            assert me["roles"] == [name], me

    # the first setup (newswire_setup) installs the templates and the first index; the
    # worker installs them again at every start, as newswire_writer
    first = asyncio.run(_install_as(secure_search, "newswire_setup"))
    assert first.created_index == f"{ALIAS}-000001"
    again = asyncio.run(_install_as(secure_search, "newswire_writer"))
    assert again.created_index is None and again.variant == first.variant

    with _as(secure_search, "newswire_writer") as writer:
        doc = {"title": "Kerry in Geneva"}
        written = writer.put(f"/{ALIAS}/_doc/a1?refresh=true", json=doc)
        assert written.status_code in (200, 201), written.text
        rolled = writer.post(f"/{ALIAS}/_rollover")
        assert rolled.status_code == 200, rolled.text
        assert rolled.json()["new_index"] == f"{ALIAS}-000002"
        assert writer.put(f"/{ALIAS}/_doc/a2", json=doc).status_code in (200, 201)
        refused = writer.delete(f"/{ALIAS}-000001")
        assert refused.status_code == 403, refused.text
        # a wildcard or the alias expand to no index the writer may delete: nothing happens
        # (a wildcard is answered "acknowledged" over an empty set; the check below counts)
        for target in (f"{ALIAS}-*", ALIAS):
            assert writer.delete(f"/{target}").status_code in (200, 400, 403, 404), target
        # the stories and trends indices: written, not deleted; the story table's day
        # indices (derived, the window's days): created and dropped by the worker
        for index in ("newswire-stories", "newswire-trends"):
            put = writer.put(f"/{index}/_doc/s1", json={"n": 1})
            assert put.status_code in (200, 201), put.text
            assert writer.delete(f"/{index}").status_code == 403, index
    # the story table: the writer reads its template, writes its day indices and deletes
    # them once past the window (issue 18), and nothing of the articles
    asyncio.run(_install_story_table(secure_search, "newswire_setup"))
    with _as(secure_search, "newswire_writer") as writer:
        assert writer.get("/_index_template/newswire-story-table").status_code == 200
        day = "newswire-story-table-20200101"
        written = writer.put(f"/{day}/_doc/a1", json={"c": "a1", "n": True, "t": 0})
        assert written.status_code in (200, 201), written.text
        listed = writer.get("/_cat/indices/newswire-story-table-*", params={"format": "json"})
        assert listed.status_code == 200 and [i["index"] for i in listed.json()] == [day]
        assert writer.delete(f"/{day}").status_code == 200
    with _as(secure_search, "newswire_reader") as reader:
        found = reader.get(f"/{ALIAS}/_search", params={"q": "kerry"})
        assert found.status_code == 200 and found.json()["hits"]["total"]["value"] >= 1
        assert reader.put(f"/{ALIAS}/_doc/r1", json={"title": "x"}).status_code == 403
        assert reader.delete(f"/{ALIAS}-000001").status_code == 403
        for index in ("newswire-stories", "newswire-trends"):
            assert reader.get(f"/{index}/_search").status_code == 200, index
            assert reader.put(f"/{index}/_doc/r1", json={"n": 1}).status_code == 403, index
    with httpx.Client(base_url=secure_search.url, auth=secure_search.admin, timeout=30) as admin:
        indices = admin.get(f"/_cat/indices/{ALIAS}-*", params={"format": "json"}).json()
        assert {i["index"] for i in indices} == {f"{ALIAS}-000001", f"{ALIAS}-000002"}
