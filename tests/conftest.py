"""Session fixtures: real Kafka, Elasticsearch and OpenSearch for integration tests.

``stack`` uses the servers named by NEWSWIRE_KAFKA_BOOTSTRAP and NEWSWIRE_ELASTICSEARCH_URL
when both are set; otherwise it starts the local stack (workshop.stack.LocalStack: Kafka and
Elasticsearch) in ``.newswire/test`` on ports base+92/93/200/300 (the base is
NEWSWIRE_TEST_PORT_BASE, or a free block of loopback ports found by ``pick_port_base``), so it
never clashes with a developer's own stack, and stops it at the end of the session
(NEWSWIRE_TEST_KEEP_STACK=1 keeps it running for the next session).

``opensearch`` is a second search node, OpenSearch, for the backend-contract tests of the
optional engine (``.newswire/test-opensearch``, ports 29400/29410), or the server named by
NEWSWIRE_TEST_OPENSEARCH_URL.

``secure_kafka`` is a Kafka-only stack (``.newswire/test-secure``, ports base+600..602) with an
extra SASL_SSL listener: a test CA and server certificate made by openssl, client
certificates required, and a SCRAM-SHA-256 user created when the storage is formatted.

``restartable_broker`` is a Kafka-only stack of its own (``.newswire/test-restart``, ports
base+700/701) for the tests that stop and start the broker, so the session's servers are
never disturbed. All fixtures are lazy: ``pytest tests/unit`` starts nothing.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import SecretStr

from pipeline.settings import Settings
from tests.plugins.endpoints import SearchNodeEndpoint, SecureKafka, StackEndpoints
from workshop.stack import LocalStack, StackStatus
from workshop.stack.elasticsearch import ElasticsearchNode
from workshop.stack.kafka import ScramUser, SecureListener
from workshop.stack.process import Probe, RunAs, start_detached
from workshop.stack.users import chown_tree

REPO = Path(__file__).resolve().parents[1]
TEST_HOME = REPO / ".newswire" / "test"
# Shared with the developer's default home, so the jars are resolved once per checkout.
SHARED_DIST = REPO / ".newswire" / "dist"
# Every port a test server may take, as offsets from one base (fixtures below and in
# tests/plugins/). NEWSWIRE_TEST_PORT_BASE fixes the base; unset, a free block is found.
PORT_OFFSETS = (92, 93, 200, 300, 400, 410, 500, 501, 502, 600, 601, 602, 700, 701, 720, 800, 810)
PORT_BASE_FILE = REPO / ".newswire" / "test-port-base"
# Below the kernel's ephemeral range (32768+), where a client reconnecting to a stopped
# broker can connect to itself and hold its port (test_worker_broker_restart.py), and apart
# from the developer's own stack (19092...).
CANDIDATE_BASES = [base for base in range(10_000, 32_000, 1000) if base != 19_000]


def _base_is_free(base: int) -> bool:
    """True when no process listens on any of ``base + PORT_OFFSETS`` on loopback."""
    for offset in PORT_OFFSETS:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", base + offset))
            except OSError:
                return False
    return True


def _kept_stack_runs() -> bool:
    """A test stack kept from an earlier session (NEWSWIRE_TEST_KEEP_STACK) still runs."""
    pid_file = TEST_HOME / "run" / "kafka.pid"
    try:
        os.kill(int(pid_file.read_text().split()[0]), 0)
    except (OSError, ValueError, IndexError):
        return False
    return True


def pick_port_base() -> int:
    """NEWSWIRE_TEST_PORT_BASE when set; else the base an earlier session recorded, if its
    ports are free or its kept stack still runs (so it is shared, as with a fixed base);
    else a free block of loopback ports, recorded for the next session. A port may be
    taken between the probe and the server's start: the server then fails to bind, loudly."""
    configured = os.environ.get("NEWSWIRE_TEST_PORT_BASE")
    if configured:
        return int(configured)
    try:
        recorded = int(PORT_BASE_FILE.read_text())
    except (OSError, ValueError):
        recorded = None
    if recorded is not None and (_kept_stack_runs() or _base_is_free(recorded)):
        return recorded
    for base in random.sample(CANDIDATE_BASES, len(CANDIDATE_BASES)):
        if _base_is_free(base):
            PORT_BASE_FILE.parent.mkdir(parents=True, exist_ok=True)
            PORT_BASE_FILE.write_text(str(base))
            return base
    raise RuntimeError("no free block of loopback ports for the test servers")


_BASE = pick_port_base()


def forget_other_ports(home: Path) -> None:
    """Kafka's storage is formatted for its controller port: when the ports moved since the
    last session in ``home`` (a new free block, or another NEWSWIRE_TEST_PORT_BASE), its
    throwaway test data (also when no marker says which ports it had) is deleted so the
    broker formats afresh, unless a broker still runs there (its start then fails with the
    stack's own clear message)."""
    marker = home / "port-base"
    try:
        previous = int(marker.read_text())
    except (OSError, ValueError):
        previous = None
    pid_file = home / "run" / "kafka.pid"
    if previous != _BASE and (home / "kafka").exists():  # moved, or not known (no marker)
        try:
            os.kill(int(pid_file.read_text().split()[0]), 0)
        except (OSError, ValueError, IndexError):
            shutil.rmtree(home / "kafka", ignore_errors=True)
        else:
            return
    home.mkdir(parents=True, exist_ok=True)
    marker.write_text(str(_BASE))


TEST_PORTS = {
    "kafka_port": _BASE + 92,
    "kafka_controller_port": _BASE + 93,
    "search_port": _BASE + 200,
    "search_transport_port": _BASE + 300,
    "corenlp_port": _BASE + 500,
}
OPENSEARCH_HOME = REPO / ".newswire" / "test-opensearch"
OPENSEARCH_PORTS = {"search_port": _BASE + 400, "search_transport_port": _BASE + 410}


def local_test_settings(home: Path = TEST_HOME, **overrides: object) -> Settings:
    """Settings for a local test stack: its own home and ports, smaller heaps."""
    values: dict[str, object] = {
        "home": home,
        **TEST_PORTS,
        "kafka_heap": "256m",
        "search_heap": "512m",
        "kafka_bootstrap": f"127.0.0.1:{TEST_PORTS['kafka_port']}",
        "elasticsearch_url": f"http://127.0.0.1:{TEST_PORTS['search_port']}",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def _up(local: LocalStack, started_here: bool) -> StackStatus:
    """``local.up()``; when it fails, stop what this session started rather than leave it."""
    try:
        return local.up()
    except BaseException:
        if started_here:
            local.down()
        raise


pytest_plugins = [
    "tests.plugins.markers",
    "tests.plugins.pki",
    "tests.plugins.feeds",
    "tests.plugins.kafka_helpers",
    "tests.plugins.engines",
    "tests.plugins.worker_process",
    "tests.plugins.signatures",
    "tests.plugins.proxy",
    "tests.plugins.alerts_corpus",
    "tests.plugins.trends_corpus",
    "tests.plugins.cluster",
    "tests.plugins.snapshot_check",
]

#: The cluster suite (three brokers, three nodes) runs only with --cluster: `make test-cluster`.
CLUSTER_TESTS = Path(__file__).resolve().parent / "cluster"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--cluster",
        action="store_true",
        help="collect tests/cluster/ (a local cluster of 3 brokers and 3 search nodes)",
    )


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave tests/cluster/ out of every run without --cluster (`make test` stays as it was)."""
    if collection_path.is_relative_to(CLUSTER_TESTS) and not config.getoption("cluster"):
        return True
    return None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "stack_last: runs after every other test (it stops the session stack)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``stack_last`` stop the shared servers: run them at the very end."""
    items.sort(key=lambda item: item.get_closest_marker("stack_last") is not None)


@pytest.fixture(scope="session")
def test_port_base() -> int:
    """The base of this session's block of test ports (``PORT_OFFSETS`` above it)."""
    return _BASE


@pytest.fixture(scope="session")
def shared_dist() -> Path:
    """Where the local stack keeps its resolved jars (shared by every test home)."""
    return SHARED_DIST


@pytest.fixture(scope="session")
def stack() -> Iterator[StackEndpoints]:
    kafka = os.environ.get("NEWSWIRE_KAFKA_BOOTSTRAP")
    search = os.environ.get("NEWSWIRE_ELASTICSEARCH_URL")
    if kafka and search:
        yield StackEndpoints(kafka, search, Settings())
        return
    settings = local_test_settings()
    forget_other_ports(TEST_HOME)
    local = LocalStack(settings, dist_dir=SHARED_DIST)
    # Another test session (a second terminal) may already run the test stack: share it,
    # and leave stopping it to the session that started it.
    started_here = not local.status().healthy
    status = _up(local, started_here)
    try:
        yield StackEndpoints(status.kafka.endpoint, status.search.endpoint, settings, local)
    finally:
        if started_here and os.environ.get("NEWSWIRE_TEST_KEEP_STACK") != "1":
            local.down()


@pytest.fixture(scope="session")
def opensearch() -> Iterator[SearchNodeEndpoint]:
    url = os.environ.get("NEWSWIRE_TEST_OPENSEARCH_URL")
    if url:
        yield SearchNodeEndpoint(url, Settings(search_engine="opensearch", opensearch_url=url))
        return
    settings = local_test_settings(
        OPENSEARCH_HOME,
        **OPENSEARCH_PORTS,
        search_engine="opensearch",
        elasticsearch_url=None,
        opensearch_url=f"http://127.0.0.1:{OPENSEARCH_PORTS['search_port']}",
    )
    local = LocalStack(settings, dist_dir=SHARED_DIST, services=("search",))
    started_here = not local.status().healthy
    status = _up(local, started_here)
    try:
        yield SearchNodeEndpoint(status.search.endpoint, settings, local)
    finally:
        if started_here and os.environ.get("NEWSWIRE_TEST_KEEP_STACK") != "1":
            local.down()


@pytest.fixture(scope="session")
def corenlp_url() -> Iterator[str]:
    """A real CoreNLP server: NEWSWIRE_CORENLP_URL, or the test stack's (started alone here
    when the ``stack`` fixture has not started it; ``stack`` then shares it)."""
    from workshop.stack.corenlp import CoreNLPServer
    from workshop.stack.java import find_jdk
    from workshop.stack.process import is_alive, read_pid, stop_process, write_pid

    configured = os.environ.get("NEWSWIRE_CORENLP_URL")
    if configured:
        yield configured
        return
    server = CoreNLPServer(local_test_settings(), TEST_HOME, SHARED_DIST)
    started_here = None
    if not server.probe().healthy:
        jdk = find_jdk(*server.java_range, purpose="CoreNLP for tests")
        started_here = server.start(jdk)
        write_pid(server.pid_file, started_here)
        deadline = time.monotonic() + server.start_timeout
        while not server.probe(timeout=2.0).healthy:
            if not is_alive(started_here) or time.monotonic() > deadline:
                pytest.fail(f"CoreNLP did not start; see {server.log_file}")
            time.sleep(0.5)
    try:
        yield server.url
    finally:
        keep = os.environ.get("NEWSWIRE_TEST_KEEP_STACK") == "1"
        if started_here and not keep and is_alive(read_pid(server.pid_file), server.marker_for()):
            stop_process(started_here, timeout=server.stop_timeout, marker=server.marker_for())
            server.pid_file.unlink(missing_ok=True)


SECURE_HOME = REPO / ".newswire" / "test-secure"
SECURE_PORTS = {"kafka_port": _BASE + 600, "kafka_controller_port": _BASE + 601}
SECURE_LISTENER_PORT = _BASE + 602
SCRAM_USER = "newswire-test"
SCRAM_PASSWORD = "scram-" + "s3cret-for-tests"


@pytest.fixture(scope="session")
def secure_kafka() -> Iterator[SecureKafka]:
    import shutil

    from tests.plugins.pki import make_pki

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: it makes the test CA and certificates")
    base = local_test_settings(
        SECURE_HOME,
        **SECURE_PORTS,
        kafka_bootstrap=f"127.0.0.1:{SECURE_PORTS['kafka_port']}",  # its plaintext listener
        elasticsearch_url=None,
        search_engine="elasticsearch",
    )
    # A fresh broker each session: SCRAM users are created when the storage is formatted.
    probe = LocalStack(base, dist_dir=SHARED_DIST, services=("kafka",))
    probe.down()
    shutil.rmtree(SECURE_HOME / "kafka", ignore_errors=True)
    pki = make_pki(SECURE_HOME / "pki")
    listener = SecureListener(
        port=SECURE_LISTENER_PORT,
        keystore=pki.server_keystore,
        truststore=pki.ca,
        users=(ScramUser(SCRAM_USER, SCRAM_PASSWORD, "SCRAM-SHA-256"),),
        client_auth="required",
    )
    local = LocalStack(base, dist_dir=SHARED_DIST, services=("kafka",), kafka_secure=listener)
    local.up()
    settings = base.model_copy(
        update={
            "kafka_bootstrap": f"127.0.0.1:{SECURE_LISTENER_PORT}",
            "kafka_security_protocol": "SASL_SSL",
            "kafka_ssl_cafile": pki.ca,
            "kafka_ssl_certfile": pki.client_cert,
            "kafka_ssl_keyfile": pki.client_key,
            "kafka_ssl_key_password": SecretStr(pki.client_key_password),
            "kafka_sasl_mechanism": "SCRAM-SHA-256",
            "kafka_sasl_username": SCRAM_USER,
            "kafka_sasl_password": SecretStr(SCRAM_PASSWORD),
        }
    )
    try:
        yield SecureKafka(settings, base.kafka_bootstrap or "", local)
    finally:
        local.down()


RESTART_HOME = REPO / ".newswire" / "test-restart"
RESTART_PORTS = {"kafka_port": _BASE + 700, "kafka_controller_port": _BASE + 701}


@pytest.fixture(scope="session")
def _restartable_stack() -> Iterator[LocalStack]:
    settings = local_test_settings(
        RESTART_HOME, **RESTART_PORTS, kafka_bootstrap=None, elasticsearch_url=None
    )
    forget_other_ports(RESTART_HOME)
    local = LocalStack(settings, dist_dir=SHARED_DIST, services=("kafka",))
    local.up()
    try:
        yield local
    finally:
        local.down()


@pytest.fixture
def restartable_broker(_restartable_stack: LocalStack) -> Iterator[LocalStack]:
    """A broker the test may stop (``down()``) and start again (``up()``, same data); it is
    running again after the test whatever happened."""
    _restartable_stack.up()
    try:
        yield _restartable_stack
    finally:
        _restartable_stack.up()


@pytest.fixture(scope="session")
def second_corenlp_url(corenlp_url: str) -> Iterator[str]:
    """A second real CoreNLP server (its own home, port base+502: base+501 is the CoreNLP
    outage test's, which must find nothing there), stopped after the session."""
    from workshop.stack.corenlp import CoreNLPServer
    from workshop.stack.java import find_jdk
    from workshop.stack.process import is_alive, stop_process

    del corenlp_url  # the first server must exist before the second starts
    settings = local_test_settings(
        REPO / ".newswire" / "test-corenlp-2", corenlp_port=TEST_PORTS["corenlp_port"] + 2
    )
    server = CoreNLPServer(settings, settings.home, SHARED_DIST)
    pid = None
    if not server.probe().healthy:
        pid = server.start(find_jdk(*server.java_range, purpose="a second CoreNLP for tests"))
        deadline = time.monotonic() + server.start_timeout
        while not server.probe(timeout=2.0).healthy:
            if not is_alive(pid) or time.monotonic() > deadline:
                pytest.fail(f"the second CoreNLP did not start; see {server.log_file}")
            time.sleep(0.5)
    try:
        yield server.url
    finally:
        if pid is not None:
            stop_process(pid, timeout=server.stop_timeout, marker=server.marker_for())


SECURE_SEARCH_HOME = REPO / ".newswire" / "test-es-secure"
SECURE_SEARCH_PORTS = {"search_port": _BASE + 800, "search_transport_port": _BASE + 810}
SECURE_ADMIN = ("nw_admin", "admin-" + "pw-for-tests-only")
SECURE_PASSWORDS = {"newswire_setup": "setup-pw-1", "newswire_writer": "writer-pw-1"}
SECURE_PASSWORDS["newswire_reader"] = "reader-pw-1"


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
        (self.config_dir / "roles.yml").write_text(yaml.safe_dump(shipped_role_bodies()))
        users = [(SECURE_ADMIN[0], SECURE_ADMIN[1], "superuser")]
        users += [(name, password, name) for name, password in SECURE_PASSWORDS.items()]
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
            reply = httpx.get(f"{self.url}/_cluster/health", auth=SECURE_ADMIN, timeout=timeout)
        except httpx.HTTPError as exc:
            return Probe(False, False, None, f"no answer: {exc!r}")
        status = reply.json().get("status") if reply.status_code == 200 else None
        healthy = status in {"yellow", "green"}
        return Probe(True, healthy, self.version, f"HTTP {reply.status_code} {status}")


@dataclass(frozen=True)
class SecureSearch:
    """An Elasticsearch node with security on, the shipped roles and a user per role."""

    url: str
    admin: tuple[str, str]
    passwords: dict[str, str]
    settings: Settings


@pytest.fixture(scope="session")
def secure_search() -> Iterator[SecureSearch]:
    """A fresh secured node (no index, users or roles left over), stopped at the end."""
    shutil.rmtree(SECURE_SEARCH_HOME, ignore_errors=True)
    url = f"http://127.0.0.1:{SECURE_SEARCH_PORTS['search_port']}"
    settings = local_test_settings(SECURE_SEARCH_HOME, **SECURE_SEARCH_PORTS, elasticsearch_url=url)
    local = LocalStack(settings, dist_dir=SHARED_DIST, services=("search",))
    local.search = SecureElasticsearchNode(settings, SECURE_SEARCH_HOME, local.search.version)
    try:
        local.up()
        yield SecureSearch(url, SECURE_ADMIN, dict(SECURE_PASSWORDS), settings)
    finally:
        local.down()


def shipped_role_bodies() -> dict[str, dict[str, Any]]:
    """Role name -> body, from the k8s setup Job's users script."""
    job = yaml.safe_load((REPO / "deploy" / "k8s" / "setup-job.yaml").read_text())
    script = job["spec"]["template"]["spec"]["initContainers"][0]["args"][0]
    bodies = {}
    for name in SECURE_PASSWORDS:
        raw = script.split(f"/_security/role/{name} '", 1)[1].split("'", 1)[0]
        bodies[name] = json.loads(raw)
    return bodies
