"""``newswire stack up | down | status``: the local Kafka and search node as one unit."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import structlog

from pipeline.endpoints import LocalEndpoints, remove_endpoints, write_endpoints
from pipeline.errors import StackError
from pipeline.settings import Settings
from workshop.stack.cluster import (
    cluster_ports,
    forget_nodes,
    kafka_members,
    node_settings,
    record_nodes,
    search_members,
)
from workshop.stack.corenlp import CoreNLPServer
from workshop.stack.elasticsearch import ElasticsearchNode
from workshop.stack.java import Jdk, find_jdk
from workshop.stack.kafka import KafkaServer, SecureListener
from workshop.stack.maven import (
    DEFAULT_POM,
    Artifacts,
    Component,
    StackVersions,
    read_versions,
    resolve,
)
from workshop.stack.opensearch import OpenSearchNode
from workshop.stack.process import (
    Probe,
    RunAs,
    file_size,
    find_pids,
    is_alive,
    port_open,
    read_pid,
    remove_pid,
    signal_process,
    tail_lines,
    tree_rss_bytes,
    wait_exit,
    write_pid,
)
from workshop.stack.search import SearchNode
from workshop.stack.users import ensure_system_user

log = structlog.get_logger(__name__)

Progress = Callable[[str], None]
STACK_FILE = "stack.json"
ServiceName = Literal["kafka", "search", "corenlp"]
SEARCH_NODES: dict[str, type[SearchNode]] = {
    "elasticsearch": ElasticsearchNode,
    "opensearch": OpenSearchNode,
}
SEARCH_ENGINES = frozenset(SEARCH_NODES)


class Server(Protocol):
    """What the manager needs from a server (KafkaServer, a SearchNode)."""

    name: str
    version: str
    port: int
    pid_file: Path
    log_file: Path
    out_file: Path
    stop_timeout: float
    start_timeout: float
    java_range: tuple[int, int | None]

    @property
    def endpoint(self) -> str: ...

    def marker_for(self) -> str: ...

    def start(self, jdk: Jdk, artifacts: Artifacts, run_as: RunAs | None = None) -> int: ...

    def probe(self, timeout: float = 5.0) -> Probe: ...

    def log_files(self) -> tuple[Path, ...]: ...


@dataclass(frozen=True)
class ServiceStatus:
    """The truth about one server: its process runs AND its port answers (``running``),
    and its health check passes (``healthy``)."""

    name: str
    running: bool
    healthy: bool
    pid: int | None
    version: str | None
    endpoint: str
    port: int
    log_file: Path
    detail: str
    rss_bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["log_file"] = str(self.log_file)
        return data


@dataclass(frozen=True)
class StackStatus:
    """The servers of the local stack."""

    home: Path
    services: tuple[ServiceStatus, ...]

    @property
    def kafka(self) -> ServiceStatus:
        """The broker (a cluster's first)."""
        for service in self.services:
            if _engine_of(service.name) == "kafka":
                return service
        raise KeyError("kafka")

    @property
    def search(self) -> ServiceStatus:
        """The search node (a cluster's first)."""
        for service in self.services:
            if _engine_of(service.name) in SEARCH_ENGINES:
                return service
        raise KeyError("search")

    @property
    def search_engine(self) -> str | None:
        names = [e for s in self.services if (e := _engine_of(s.name)) in SEARCH_ENGINES]
        return names[0] if names else None

    @property
    def running(self) -> bool:
        return all(s.running for s in self.services)

    @property
    def healthy(self) -> bool:
        return all(s.healthy for s in self.services)

    def _get(self, name: str) -> ServiceStatus:
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "home": str(self.home),
            "search_engine": self.search_engine,
            "running": self.running,
            "healthy": self.healthy,
            "services": [s.to_dict() for s in self.services],
        }


def _engine_of(name: str) -> str:
    """``kafka`` of ``kafka-2``, ``elasticsearch`` of ``elasticsearch`` (a service's kind)."""
    head, _, tail = name.rpartition("-")
    return head if head and tail.isdigit() else name


def _failure(server: Server, what: str, since: dict[Path, int] | None = None) -> StackError:
    """A StackError with the log lines ``server`` wrote since ``since`` (byte offsets)."""
    lines: list[str] = []
    for path, limit in zip(server.log_files(), (15, 25), strict=False):
        lines += tail_lines(path, limit, since=(since or {}).get(path, 0))
    tail = "\n".join(f"  | {line}" for line in lines) if lines else "  (nothing logged)"
    files = " and ".join(str(p) for p in server.log_files())
    return StackError(f"{server.name} {what}; last lines of {files}:\n{tail}\n", server.log_file)


class LocalStack:
    """Local Apache Kafka (KRaft) and a search node (Elasticsearch, or OpenSearch when
    ``NEWSWIRE_SEARCH_ENGINE=opensearch``), resolved by Maven, data under ``home``.

    ``dist_dir`` holds the resolved jars and distributions (default ``<home>/dist``); point
    several homes at one ``dist_dir`` to share them. ``services`` limits the stack to some of
    its servers (a test's second search node needs no broker); ``kafka_secure`` adds a
    SASL_SSL listener to the broker (tests of the clients' TLS and SCRAM). ``progress``
    receives one-line messages (Maven downloads, starts, readiness)."""

    def __init__(
        self,
        settings: Settings,
        progress: Progress | None = None,
        *,
        dist_dir: Path | None = None,
        pom: Path | None = None,
        services: Sequence[ServiceName] = ("kafka", "search", "corenlp"),
        kafka_secure: SecureListener | None = None,
        nodes: int = 1,
    ) -> None:
        self.settings = settings
        self.home = settings.home.expanduser().resolve()
        self.dist_dir = (dist_dir or self.home / "dist").expanduser().resolve()
        self.pom = (pom or DEFAULT_POM).resolve()
        self._progress = progress
        self._versions: StackVersions | None = None
        self._log_offsets: dict[Path, int] = {}
        versions = self._read_versions_quietly()
        kafka_version = versions.kafka if versions else "unknown"
        node = SEARCH_NODES[settings.search_engine]
        search_version = getattr(versions, node.component) if versions else "unknown"
        self.nodes = nodes
        if nodes == 1:
            self.kafkas: tuple[KafkaServer, ...] = (
                KafkaServer(settings, self.home, kafka_version, kafka_secure),
            )
            self.searches: tuple[SearchNode, ...] = (node(settings, self.home, search_version),)
        else:
            if kafka_secure is not None:
                raise StackError("a local cluster has no SASL_SSL listener (one node only)")
            layout = cluster_ports(settings, nodes)
            each = [node_settings(settings, ports) for ports in layout]
            self.kafkas = tuple(
                KafkaServer(s, self.home, kafka_version, member=m)
                for s, m in zip(each, kafka_members(layout), strict=True)
            )
            self.searches = tuple(
                node(s, self.home, search_version, m)
                for s, m in zip(each, search_members(layout), strict=True)
            )
        self.services = tuple(services)
        self.stack_file = self.home / STACK_FILE
        # the entity recogniser's server, unless another one is configured or spaCy is used
        self.corenlp: CoreNLPServer | None = None
        if settings.ner_backend == "corenlp" and not settings.corenlp_url:
            self.corenlp = CoreNLPServer(settings, self.home, self.dist_dir, self._say)

    @property
    def kafka(self) -> KafkaServer:
        """The first broker (the only one of a one-node stack)."""
        return self.kafkas[0]

    @kafka.setter
    def kafka(self, server: KafkaServer) -> None:
        self.kafkas = (server, *self.kafkas[1:])

    @property
    def search(self) -> SearchNode:
        """The first search node; assigning one (a test's own node class) replaces it."""
        return self.searches[0]

    @search.setter
    def search(self, node: SearchNode) -> None:
        self.searches = (node, *self.searches[1:])

    @property
    def servers(self) -> tuple[Server, ...]:
        chosen: dict[ServiceName, Sequence[Server]] = {
            "kafka": self.kafkas,
            "search": self.searches,
            "corenlp": (self.corenlp,) if self.corenlp else (),
        }
        return tuple(server for name in self.services for server in chosen[name])

    @property
    def components(self) -> tuple[Component, ...]:
        """What deploy/local/pom.xml resolves for this stack (CoreNLP has its own pom)."""
        return tuple(
            "kafka" if name == "kafka" else self.search.component
            for name in self.services
            if name in ("kafka", "search")
        )

    def _read_versions_quietly(self) -> StackVersions | None:
        try:
            self._versions = read_versions(self.pom)
        except StackError:
            return None
        return self._versions

    def _say(self, message: str) -> None:
        log.debug("stack", message=message)
        if self._progress is not None:
            self._progress(message)

    # ------------------------------------------------------------------ status

    def _pid(self, server: Server) -> int | None:
        marker = server.marker_for()
        pid = read_pid(server.pid_file)
        if is_alive(pid, marker):
            return pid
        found = find_pids(marker)
        return found[0] if found else None

    def service_status(self, server: Server) -> ServiceStatus:
        pid = self._pid(server)
        had_pid_file = server.pid_file.exists()
        # No health check of a port some other process holds.
        probe = Probe(port_open(server.port), False, None, "") if pid is None else server.probe()
        running = pid is not None and probe.port_open
        if pid is None and probe.port_open:
            detail = f"port {server.port} is used by a process that is not this stack's"
        elif pid is None:
            detail = "not running (stale pid file)" if had_pid_file else "not running"
        elif not probe.port_open:
            detail = f"process {pid} runs but port {server.port} does not answer (starting?)"
        else:
            detail = probe.detail
        return ServiceStatus(
            name=server.name,
            running=running,
            healthy=running and probe.healthy,
            pid=pid,
            version=probe.version or server.version,
            endpoint=server.endpoint,
            port=server.port,
            log_file=server.log_file,
            detail=detail,
            rss_bytes=tree_rss_bytes(pid),
        )

    def status(self) -> StackStatus:
        """What really runs: each pid alive (and ours) and its port answering."""
        return StackStatus(self.home, tuple(self.service_status(s) for s in self.servers))

    # ------------------------------------------------------------------ up

    def resolve(self) -> Artifacts:
        """Find JDKs and make sure the servers are downloaded (no-op when they are)."""
        jdk = self._jdk(self.kafka)  # Maven itself runs on any JDK the broker accepts
        return resolve(self.pom, self.dist_dir, jdk, self._say, self.components)

    def _jdk(self, server: Server) -> Jdk:
        low, high = server.java_range
        return find_jdk(low, high, purpose=f"{server.name} {server.version}")

    def up(self, timeout: float | None = None) -> StackStatus:
        """Start whatever is not running, wait until all answer, write ``stack.json`` and
        the endpoints file (pipeline.endpoints).

        Healthy servers are left alone. Raises StackError (with the last log lines) when a
        server exits or does not become healthy in time."""
        started_at = time.monotonic()
        if self._versions is None:
            self._versions = read_versions(self.pom)
        jdks = {s.name: self._jdk(s) for s in self.servers}
        artifacts = self.resolve()
        extras = (
            self.search.prepare(jdks[self.search.name], artifacts, self._say)
            if "search" in self.services
            else []
        )
        self.home.mkdir(parents=True, exist_ok=True)

        waiting: dict[str, tuple[Server, int]] = {}
        run_as: RunAs | None = None
        self._log_offsets = {p: file_size(p) for s in self.servers for p in s.log_files()}
        for server in self.servers:
            pid = self._pid(server)
            if pid is not None:
                write_pid(server.pid_file, pid)
                waiting[server.name] = (server, pid)
                self._say(f"{server.name} already running (pid {pid})")
                continue
            remove_pid(server.pid_file)
            self._check_ports_free(server)
            if isinstance(server, SearchNode):
                run_as = ensure_system_user()
            jdk = jdks[server.name]
            self._say(f"starting {server.name} {server.version} on Java {jdk.version}")
            pid = server.start(jdk, artifacts, run_as if isinstance(server, SearchNode) else None)
            write_pid(server.pid_file, pid)
            log.info("server started", service=server.name, pid=pid, log=str(server.log_file))
            waiting[server.name] = (server, pid)

        record_nodes(self.home, self.nodes)
        self._wait_healthy(list(waiting.values()), timeout)
        status = self.status()
        self._write_stack_file(status, extras)
        elapsed = round(time.monotonic() - started_at, 1)
        self._say(f"stack up in {elapsed} s")
        log.info("local stack up", seconds=elapsed, home=str(self.home))
        return status

    def _check_ports_free(self, server: Server) -> None:
        ports = [server.port]
        if isinstance(server, KafkaServer):
            ports.append(server.controller_port)
            if server.secure is not None:
                ports.append(server.secure.port)
        if isinstance(server, SearchNode):
            ports.append(server.transport_port)
        for port in ports:
            if port_open(port):
                raise StackError(
                    f"cannot start {server.name}: port {port} on 127.0.0.1 is already in use "
                    "by another process (another stack? change the NEWSWIRE_*_PORT settings)"
                )

    def _wait_healthy(self, pending: list[tuple[Server, int]], timeout: float | None) -> None:
        start = time.monotonic()
        deadlines = {s.name: start + (timeout or s.start_timeout) for s, _ in pending}
        last_detail: dict[str, str] = {}
        while pending:
            still: list[tuple[Server, int]] = []
            for server, pid in pending:
                if not is_alive(pid):
                    remove_pid(server.pid_file)
                    raise _failure(server, f"exited during startup (pid {pid})", self._log_offsets)
                probe = server.probe(timeout=3.0)
                if probe.healthy:
                    took = round(time.monotonic() - start, 1)
                    self._say(f"{server.name} ready at {server.endpoint} ({took} s)")
                    continue
                if time.monotonic() > deadlines[server.name]:
                    waited = round(time.monotonic() - start)
                    # A node that never became healthy is not left running half-started.
                    self._say(f"{server.name} not healthy after {waited} s: stopping it")
                    self._stop(server, pid)
                    remove_pid(server.pid_file)
                    raise _failure(
                        server,
                        f"not healthy after {waited} s, stopped (last check: {probe.detail})",
                        self._log_offsets,
                    )
                if last_detail.get(server.name) != probe.detail:
                    last_detail[server.name] = probe.detail
                    log.debug("waiting", service=server.name, detail=probe.detail)
                still.append((server, pid))
            pending = still
            if pending:
                time.sleep(0.5)

    def _write_stack_file(self, status: StackStatus, extras: list[str]) -> None:
        running = {s.name for s in status.services}
        # A cluster's endpoints are lists (comma-separated), as the settings take them.
        brokers = ",".join(k.bootstrap for k in self.kafkas if k.name in running)
        urls = ",".join(n.url for n in self.searches if n.name in running)
        data = {
            "kafka_bootstrap": brokers or None,
            "search_url": urls or None,
            "search_engine": self.search.engine if urls else None,
            "search_version": status.search.version if urls else None,
            "kafka_version": status.kafka.version if brokers else None,
            "nodes": self.nodes,
            "search_extensions": extras,
            "corenlp_url": self.corenlp.url if self.corenlp and "corenlp" in running else None,
            "pids": {s.name: s.pid for s in status.services},
            "logs": {s.name: str(s.log_file) for s in status.services},
        }
        tmp = self.stack_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.stack_file)
        # The contract the command line reads (pipeline.endpoints); stack.json is ours.
        endpoints = LocalEndpoints.from_json(data)
        write_endpoints(self.home, endpoints or LocalEndpoints())

    # ------------------------------------------------------------------ down

    def _stop(
        self, server: Server, pid: int, *, signalled: bool = False, since: float | None = None
    ) -> None:
        """SIGTERM (unless already sent), wait up to the server's stop timeout counted from
        ``since``, then SIGKILL its process group."""
        if not signalled:
            signal_process(pid, signal.SIGTERM)
        start = time.monotonic() if since is None else since
        remaining = max(0.0, start + server.stop_timeout - time.monotonic())
        marker = server.marker_for()
        if wait_exit([pid], remaining, marker):
            log.warning("server ignored SIGTERM; killing it", service=server.name, pid=pid)
            self._say(f"{server.name} did not stop in {server.stop_timeout:.0f} s: killing")
            signal_process(pid, signal.SIGKILL, group=True)
            signal_process(pid, signal.SIGKILL)
            if wait_exit([pid], 10.0, marker):
                raise StackError(f"{server.name} (pid {pid}) survived SIGKILL")

    def server(self, name: str) -> Server:
        """The server called ``name`` (``kafka-2``, ``elasticsearch-3``, ``kafka``)."""
        for server in self.servers:
            if server.name == name:
                return server
        raise StackError(f"no server {name!r} in this stack")

    def kill(self, name: str) -> int | None:
        """SIGKILL one server's whole process group (a crash, for fault tests); its pid."""
        server = self.server(name)
        pid = self._pid(server)
        if pid is not None:
            signal_process(pid, signal.SIGKILL, group=True)
            signal_process(pid, signal.SIGKILL)
            if wait_exit([pid], 30.0, server.marker_for()):
                raise StackError(f"{name} (pid {pid}) survived SIGKILL")
        return pid

    def stop_one(self, name: str) -> None:
        """Stop one server cleanly (SIGTERM, bounded wait): a rolling restart's step; ``up``
        starts it again."""
        server = self.server(name)
        pid = self._pid(server)
        if pid is not None:
            self._stop(server, pid)
        remove_pid(server.pid_file)

    def down(self) -> None:
        """SIGTERM both servers, wait (bounded), SIGKILL stragglers, remove pid files.

        Does nothing, quietly, when nothing runs."""
        targets: list[tuple[Server, int]] = []
        for server in self.servers:
            pid = self._pid(server)
            if pid is not None:
                self._say(f"stopping {server.name} (pid {pid})")
                signal_process(pid, signal.SIGTERM)
                targets.append((server, pid))
        start = time.monotonic()
        for server, pid in targets:
            self._stop(server, pid, signalled=True, since=start)
            self._say(f"{server.name} stopped ({round(time.monotonic() - start, 1)} s)")
        for server in self.servers:
            remove_pid(server.pid_file)
        self.stack_file.unlink(missing_ok=True)
        remove_endpoints(self.home)
        forget_nodes(self.home)
        if targets:
            log.info("local stack down", seconds=round(time.monotonic() - start, 1))


def local_endpoints(settings: Settings) -> dict[str, Any] | None:
    """The contents of ``<home>/stack.json``, each server's endpoint kept only while that
    server runs (its pid alive and its port open), so a broker that is up is found even when
    the search node is down; None when there is no stack file or nothing of it runs."""
    home = settings.home.expanduser().resolve()
    try:
        data = json.loads((home / STACK_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    # The engine that was started, whatever NEWSWIRE_SEARCH_ENGINE says now.
    engine = data.get("search_engine")
    if engine in SEARCH_ENGINES and engine != settings.search_engine:
        settings = settings.model_copy(update={"search_engine": engine})
    keys: dict[ServiceName, str] = {
        "kafka": "kafka_bootstrap",
        "search": "search_url",
        "corenlp": "corenlp_url",
    }
    services = [name for name, key in keys.items() if data.get(key)]
    nodes = data.get("nodes") if isinstance(data.get("nodes"), int) else 1
    stack = LocalStack(settings, services=services, nodes=nodes or 1)
    members: dict[ServiceName, Sequence[Server]] = {
        "kafka": stack.kafkas,
        "search": stack.searches,
        "corenlp": (stack.corenlp,) if stack.corenlp else (),
    }
    for name in services:
        # A cluster's endpoint list stays while any of its nodes runs (clients skip the rest).
        if members[name] and not any(
            is_alive(read_pid(server.pid_file), server.marker_for()) and port_open(server.port)
            for server in members[name]
        ):
            data[keys[name]] = None
    return data if any(data.get(key) for key in keys.values()) else None
