"""The shipped Elasticsearch roles on a real node with security on: the writer installs the
index, writes and rolls over but cannot delete an index; the reader only reads.

The roles are read from the users script of ``deploy/k8s/setup-job.yaml`` (the same bodies
as docker-compose.yml's ``elasticsearch-init``), so this tests what ships. The node is an
Elasticsearch of its own (``.newswire/test-es-secure``, ports base+800/810) with
``xpack.security.enabled: true``; the roles go into its ``roles.yml`` and the users into the
file realm (``elasticsearch-users``): the security API would keep them in the ``.security``
index, whose mapping needs the analysis-common module that the Maven build lacks.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import SecretStr

from pipeline.sinks.elasticsearch import ElasticsearchBackend
from pipeline.sinks.indexer import IndexSetup, install_index
from pipeline.stack import LocalStack
from pipeline.stack.elasticsearch import ElasticsearchNode
from pipeline.stack.process import Probe, RunAs, start_detached
from pipeline.stack.users import chown_tree
from tests.conftest import _BASE, REPO, SHARED_DIST, local_test_settings

pytestmark = pytest.mark.integration

HOME = REPO / ".newswire" / "test-es-secure"
PORTS = {"search_port": _BASE + 800, "search_transport_port": _BASE + 810}
ADMIN = ("nw_admin", "admin-" + "pw-for-tests-only")
PASSWORDS = {"newswire_setup": "setup-pw-1", "newswire_writer": "writer-pw-1"}
PASSWORDS["newswire_reader"] = "reader-pw-1"
ALIAS = "newswire-articles"


class SecureElasticsearchNode(ElasticsearchNode):
    """The local node with security on and a file-realm superuser."""

    def write_engine_config(self, dist_config: Path) -> None:
        super().write_engine_config(dist_config)
        (self.config_dir / "elasticsearch.yml").write_text(
            "xpack.security.enabled: true\n"
            "xpack.security.http.ssl.enabled: false\n"
            "xpack.security.transport.ssl.enabled: false\n",
            encoding="utf-8",
        )

    def start(self, jdk: Any, artifacts: Any, run_as: RunAs | None = None) -> int:
        self.write_config(artifacts, run_as)
        tool = self.distribution(artifacts) / "bin" / "elasticsearch-users"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "ES_PATH_CONF": str(self.config_dir),
            "ES_JAVA_HOME": str(jdk.home),
            "CLI_JAVA_OPTS": "-Xmx256m",
        }
        # The shipped roles as file-based roles: the security API would store them in the
        # .security index, whose mapping needs the analysis-common module this build lacks.
        (self.config_dir / "roles.yml").write_text(yaml.safe_dump(_role_bodies()))
        users = [(ADMIN[0], ADMIN[1], "superuser")]
        users += [(name, password, name) for name, password in PASSWORDS.items()]
        for user, password, role in users:
            subprocess.run(
                [str(tool), "useradd", user, "-p", password, "-r", role],
                env=env,
                check=True,
                capture_output=True,
                timeout=300,
            )
        if run_as is not None:
            chown_tree(self.config_dir, run_as)
        return start_detached(
            self.argv(artifacts),
            cwd=self.base,
            env=self.environment(jdk),
            out_file=self.out_file,
            run_as=run_as,
        )

    def probe(self, timeout: float = 5.0) -> Probe:
        try:
            reply = httpx.get(f"{self.url}/_cluster/health", auth=ADMIN, timeout=timeout)
        except httpx.HTTPError as exc:
            return Probe(False, False, None, f"no answer: {exc!r}")
        status = reply.json().get("status") if reply.status_code == 200 else None
        healthy = status in {"yellow", "green"}
        return Probe(True, healthy, self.version, f"HTTP {reply.status_code} {status}")


@pytest.fixture(scope="module")
def secure_url() -> Iterator[str]:
    shutil.rmtree(HOME, ignore_errors=True)  # a fresh node: no index, users or roles left over
    settings = local_test_settings(HOME, **PORTS)
    local = LocalStack(settings, dist_dir=SHARED_DIST, services=("search",))
    local.search = SecureElasticsearchNode(settings, HOME, local.search.version)
    try:
        local.up()
        yield local.search.url
    finally:
        local.down()


def _role_bodies() -> dict[str, dict[str, Any]]:
    """Role name -> body, from the k8s setup Job's users script."""
    job = yaml.safe_load((REPO / "deploy" / "k8s" / "setup-job.yaml").read_text())
    script = job["spec"]["template"]["spec"]["initContainers"][0]["args"][0]
    bodies = {}
    for name in PASSWORDS:
        raw = script.split(f"/_security/role/{name} '", 1)[1].split("'", 1)[0]
        bodies[name] = json.loads(raw)
    return bodies


async def _install_as(url: str, user: str) -> IndexSetup:
    settings = local_test_settings(
        HOME,
        **PORTS,
        elasticsearch_url=url,
        elasticsearch_username=user,
        elasticsearch_password=SecretStr(PASSWORDS[user]),
    )
    backend = ElasticsearchBackend(settings, url)
    try:
        return await install_index(backend, ALIAS)
    finally:
        await backend.client.close()


def _as(url: str, user: str) -> httpx.Client:
    return httpx.Client(base_url=url, auth=(user, PASSWORDS[user]), timeout=30)


def test_the_shipped_roles_hold_on_a_secured_node(secure_url: str) -> None:
    for name in PASSWORDS:
        with _as(secure_url, name) as client:
            me = client.get("/_security/_authenticate").json()
            assert me["roles"] == [name], me

    # the first setup (newswire_setup) installs the templates and the first index; the
    # worker installs them again at every start, as newswire_writer
    first = asyncio.run(_install_as(secure_url, "newswire_setup"))
    assert first.created_index == f"{ALIAS}-000001"
    again = asyncio.run(_install_as(secure_url, "newswire_writer"))
    assert again.created_index is None and again.variant == first.variant

    with _as(secure_url, "newswire_writer") as writer:
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
    with _as(secure_url, "newswire_reader") as reader:
        found = reader.get(f"/{ALIAS}/_search", params={"q": "kerry"})
        assert found.status_code == 200 and found.json()["hits"]["total"]["value"] >= 1
        assert reader.put(f"/{ALIAS}/_doc/r1", json={"title": "x"}).status_code == 403
        assert reader.delete(f"/{ALIAS}-000001").status_code == 403
    with httpx.Client(base_url=secure_url, auth=ADMIN, timeout=30) as admin:
        indices = admin.get(f"/_cat/indices/{ALIAS}-*", params={"format": "json"}).json()
        assert {i["index"] for i in indices} == {f"{ALIAS}-000001", f"{ALIAS}-000002"}
