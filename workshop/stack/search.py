"""What the local search nodes share: folders under the home, start, health and version.

``ElasticsearchNode`` (the default) and ``OpenSearchNode`` (on request,
``NEWSWIRE_SEARCH_ENGINE=opensearch``) differ only in their distribution, environment
variables and extra modules."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import httpx

from pipeline.errors import StackError
from pipeline.settings import Settings
from workshop.stack.java import Jdk
from workshop.stack.maven import Artifacts, Component, Progress
from workshop.stack.process import Probe, RunAs, port_open, start_detached
from workshop.stack.users import chown_tree, make_traversable

CLUSTER_NAME = "newswire-local"
STOP_TIMEOUT = 30.0
START_TIMEOUT = 180.0


@dataclass(frozen=True)
class SearchMember:
    """This node's place in a local cluster: its name, every node's name (the first
    election's ``cluster.initial_master_nodes``) and transport address (seed hosts)."""

    node_name: str
    node_names: tuple[str, ...]
    seed_hosts: tuple[str, ...]


def node_settings(
    *,
    http_port: int,
    transport_port: int,
    data_dir: Path,
    logs_dir: Path,
    member: SearchMember | None = None,
) -> dict[str, str]:
    """The -E settings both engines take for a loopback node: alone (``single-node``
    discovery), or one of a cluster's master-eligible nodes with ``member``."""
    discovery = (
        {
            "node.name": member.node_name,
            "discovery.seed_hosts": ",".join(member.seed_hosts),
            "cluster.initial_master_nodes": ",".join(member.node_names),
        }
        if member
        else {"node.name": CLUSTER_NAME, "discovery.type": "single-node"}
    )
    return {
        "cluster.name": CLUSTER_NAME,
        **discovery,
        "network.host": "127.0.0.1",
        "http.port": str(http_port),
        "transport.port": str(transport_port),
        "path.data": str(data_dir),
        "path.logs": str(logs_dir),
        # A nearly full dev disk would otherwise turn every index read-only.
        "cluster.routing.allocation.disk.threshold_enabled": "false",
        "action.destructive_requires_name": "false",
    }


def node_version(client: httpx.Client) -> str | None:
    """The version of the node that answers, from ``GET /_nodes/_local`` (``GET /`` answers
    405 on Elasticsearch's integ-test-zip build)."""
    response = client.get("/_nodes/_local", params={"filter_path": "nodes.*.version"})
    response.raise_for_status()
    nodes = response.json().get("nodes") or {}
    for node in nodes.values():
        return str(node.get("version")) if node.get("version") else None
    return None


class SearchNode:
    """Folders, start command and health check of one local search node."""

    name: str
    component: Component
    java_range: tuple[int, int | None]
    stop_timeout = STOP_TIMEOUT
    start_timeout = START_TIMEOUT

    def __init__(
        self, settings: Settings, home: Path, version: str, member: SearchMember | None = None
    ) -> None:
        self.settings = settings
        self.home = home
        self.version = version
        self.member = member
        #: The engine's name (``name`` is the node's: numbered in a cluster).
        self.engine: str = self.name
        self.port = settings.search_port
        self.transport_port = settings.search_transport_port
        # One node keeps the engine's name; a cluster's nodes are numbered (elasticsearch-2).
        if member is not None:
            self.name = f"{self.name}-{member.node_name.rsplit('-', 1)[-1]}"
        self.base = home / self.name
        self.config_dir = self.base / "config"
        self.data_dir = self.base / "data"
        #: The node's ``path.repo``: `newswire snapshot` writes its filesystem repository here.
        #: One folder for every node of a cluster (a repository must be reachable from each
        #: node, as a shared mount would be): ``<home>/<engine>/snapshots``, the single node's.
        self.snapshot_dir = home / self.engine / "snapshots"
        self.tmp_dir = self.base / "tmp"
        self.logs_dir = home / "logs" / self.name
        self.log_file = self.logs_dir / f"{CLUSTER_NAME}.log"
        self.out_file = home / "logs" / f"{self.name}.out"
        self.pid_file = home / "run" / f"{self.name}.pid"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return self.url

    # -- what each engine defines ------------------------------------------------------

    def distribution(self, artifacts: Artifacts) -> Path:
        raise NotImplementedError

    def marker_for(self) -> str:
        """A string in the node's command line that ties it to this home."""
        raise NotImplementedError

    def environment(self, jdk: Jdk) -> dict[str, str]:
        raise NotImplementedError

    def write_engine_config(self, dist_config: Path) -> None:
        """Write the engine's own files into ``config_dir`` (jvm.options, log4j2, yml)."""
        raise NotImplementedError

    def prepare(self, jdk: Jdk, artifacts: Artifacts, progress: Progress) -> list[str]:
        """Install what the distribution lacks; returns the extra modules or plugins."""
        return []

    # -- shared ----------------------------------------------------------------------

    def executable(self, artifacts: Artifacts) -> Path:
        return self.distribution(artifacts) / "bin" / self.engine

    def write_config(self, artifacts: Artifacts, run_as: RunAs | None) -> None:
        for d in (
            self.config_dir / "jvm.options.d",
            self.data_dir,
            self.snapshot_dir,
            self.tmp_dir,
            self.logs_dir,
        ):
            d.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.write_engine_config(self.distribution(artifacts) / "config")
        if run_as is not None:
            for root in (self.base, self.logs_dir, self.snapshot_dir):  # the last: shared
                make_traversable(root)
                chown_tree(root, run_as)
            make_traversable(self.distribution(artifacts) / "bin")

    def argv(self, artifacts: Artifacts) -> list[str]:
        settings = node_settings(
            http_port=self.port,
            transport_port=self.transport_port,
            data_dir=self.data_dir,
            logs_dir=self.logs_dir,
            member=self.member,
        )
        return [
            str(self.executable(artifacts)),
            *(f"-E{key}={value}" for key, value in settings.items()),
        ]

    def base_environment(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(self.base),
        }

    def start(self, jdk: Jdk, artifacts: Artifacts, run_as: RunAs | None = None) -> int:
        """Write config and start the node detached as ``run_as``; return its pid."""
        if not self.executable(artifacts).is_file():
            raise StackError(f"no {self.engine} distribution in {self.distribution(artifacts)}")
        self.write_config(artifacts, run_as)
        return start_detached(
            self.argv(artifacts),
            cwd=self.base,
            env=self.environment(jdk),
            out_file=self.out_file,
            run_as=run_as,
        )

    def probe(self, timeout: float = 5.0) -> Probe:
        """Port open, and ``GET /_cluster/health`` says yellow or green."""
        if not port_open(self.port):
            return Probe(False, False, None, f"nothing listens on {self.url}")
        try:
            with httpx.Client(base_url=self.url, timeout=timeout) as client:
                health = client.get("/_cluster/health")
                health.raise_for_status()
                status = health.json().get("status")
                version = node_version(client)
        except (httpx.HTTPError, ValueError) as exc:
            return Probe(True, False, None, f"HTTP check failed: {exc!r}")
        healthy = status in {"yellow", "green"}
        return Probe(True, healthy, version, f"cluster status {status}")

    def log_files(self) -> tuple[Path, ...]:
        """Where to look when it fails: the console output, then the server log."""
        return (self.out_file, self.log_file)


def copy_config_file(source: Path, target: Path) -> None:
    """Copy one file of the distribution's config folder (missing ones are skipped)."""
    if source.is_file():
        shutil.copyfile(source, target)
