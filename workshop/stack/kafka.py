"""Apache Kafka 4.x as one KRaft node (broker + controller) from the Maven-resolved jars."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import os
import subprocess
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import structlog

from pipeline.errors import StackError
from pipeline.settings import Settings
from workshop.stack.java import Jdk
from workshop.stack.maven import Artifacts
from workshop.stack.process import Probe, RunAs, port_open, start_detached

log = structlog.get_logger(__name__)

NAME = "kafka"
MAIN_CLASS = "kafka.Kafka"
JAVA_MIN, JAVA_MAX = 17, 25
STOP_TIMEOUT = 45.0
START_TIMEOUT = 120.0
NODE_ID = 1

T = TypeVar("T")


def new_cluster_id() -> str:
    """A Kafka cluster id, as ``kafka-storage random-uuid`` makes it (``Uuid.randomUuid``):
    16 random bytes in URL-safe base64 without padding (22 characters), never starting with
    '-' and never the all-zero / metadata-topic ids."""
    reserved = {"AAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAQ"}
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not text.startswith("-") and text not in reserved:
            return text


@dataclass(frozen=True)
class ScramUser:
    """A SCRAM credential written into the metadata when the storage is formatted."""

    name: str
    password: str = field(repr=False)
    mechanism: str = "SCRAM-SHA-256"

    def format_arg(self) -> str:
        """The ``kafka-storage format --add-scram`` value for this user."""
        for text in (self.name, self.password):
            if any(c in text for c in ',=[]"\n'):
                raise StackError("SCRAM names and passwords may not contain , = [ ] or quotes")
        return f"{self.mechanism}=[name={self.name},password={self.password}]"


@dataclass(frozen=True)
class SecureListener:
    """An extra ``SASL_SSL`` listener (TLS + SCRAM) next to the PLAINTEXT one, for testing
    Newswire's client security against a real broker: the PEM keystore holds the server's
    private key (unencrypted PKCS#8) and certificate chain; the PEM truststore the CA that
    signs client certificates (``client_auth=required`` makes them mandatory)."""

    port: int
    keystore: Path
    truststore: Path
    users: tuple[ScramUser, ...] = ()
    client_auth: Literal["none", "requested", "required"] = "none"

    @property
    def mechanisms(self) -> list[str]:
        return sorted({u.mechanism for u in self.users} or {"SCRAM-SHA-256"})


@dataclass(frozen=True)
class ClusterMember:
    """This broker's place in a local cluster: its node id, the static quorum voters, and
    the replication its default and internal topics get."""

    node_id: int
    voters: str
    replication: int
    min_insync: int


@dataclass(frozen=True)
class KafkaConfig:
    """Everything server.properties depends on."""

    port: int
    controller_port: int
    data_dir: Path
    host: str = "127.0.0.1"
    node_id: int = NODE_ID
    num_partitions: int = 4
    internal_topic_partitions: int = 4
    secure: SecureListener | None = None
    #: ``controller.quorum.voters`` of a cluster (``1@host:port,2@...``); None = one node.
    voters: str | None = None
    #: Default and internal topics' replication factor and min ISR (1 and 1 for one node).
    replication: int = 1
    min_insync: int = 1


def render_server_properties(cfg: KafkaConfig) -> str:
    """server.properties for a node that is broker and KRaft controller at once: alone
    (``--standalone`` quorum), or one of a cluster's voters with ``cfg.voters`` (with
    ``cfg.secure``, also a SASL_SSL listener)."""
    listeners = f"PLAINTEXT://{cfg.host}:{cfg.port},CONTROLLER://{cfg.host}:{cfg.controller_port}"
    protocols = "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    if cfg.secure is not None:
        listeners += f",SASL_SSL://{cfg.host}:{cfg.secure.port}"
        protocols += ",SASL_SSL:SASL_SSL"
    quorum = (
        ("controller.quorum.voters", cfg.voters)
        if cfg.voters
        else ("controller.quorum.bootstrap.servers", f"{cfg.host}:{cfg.controller_port}")
    )
    rf, isr = cfg.replication, cfg.min_insync
    props: list[tuple[str, object]] = [
        ("process.roles", "broker,controller"),
        ("node.id", cfg.node_id),
        quorum,
        ("listeners", listeners),
        ("advertised.listeners", listeners),
        ("controller.listener.names", "CONTROLLER"),
        ("inter.broker.listener.name", "PLAINTEXT"),
        ("listener.security.protocol.map", protocols),
        ("log.dirs", cfg.data_dir),
        ("num.partitions", cfg.num_partitions),
        ("default.replication.factor", rf),
        ("min.insync.replicas", isr),
        ("auto.create.topics.enable", "true"),
        ("offsets.topic.replication.factor", rf),
        ("offsets.topic.num.partitions", cfg.internal_topic_partitions),
        ("transaction.state.log.replication.factor", rf),
        ("transaction.state.log.min.isr", isr),
        ("transaction.state.log.num.partitions", cfg.internal_topic_partitions),
        ("share.coordinator.state.topic.replication.factor", rf),
        ("share.coordinator.state.topic.min.isr", isr),
        ("share.coordinator.state.topic.num.partitions", cfg.internal_topic_partitions),
        ("group.initial.rebalance.delay.ms", 0),
        ("num.network.threads", 2),
        ("num.io.threads", 4),
        ("num.recovery.threads.per.data.dir", 1),
        ("log.retention.hours", 168),
        ("log.segment.bytes", 128 * 1024 * 1024),
    ]
    if cfg.secure is not None:
        props += _secure_properties(cfg.secure)
    lines = ["# Written by newswire stack up (workshop/stack/kafka.py); edits are overwritten."]
    lines += [f"{key}={value}" for key, value in props]
    return "\n".join(lines) + "\n"


def _secure_properties(secure: SecureListener) -> list[tuple[str, object]]:
    """The SASL_SSL listener: PEM key and trust stores, SCRAM mechanisms and their JAAS
    login module (SCRAM checks passwords against the credentials in the metadata)."""
    prefix = "listener.name.sasl_ssl"
    props: list[tuple[str, object]] = [
        ("sasl.enabled.mechanisms", ",".join(secure.mechanisms)),
        (f"{prefix}.ssl.keystore.type", "PEM"),
        (f"{prefix}.ssl.keystore.location", secure.keystore),
        (f"{prefix}.ssl.truststore.type", "PEM"),
        (f"{prefix}.ssl.truststore.location", secure.truststore),
        (f"{prefix}.ssl.client.auth", secure.client_auth),
    ]
    for mechanism in secure.mechanisms:
        props.append(
            (
                f"{prefix}.{mechanism.lower()}.sasl.jaas.config",
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            )
        )
    return props


def render_log4j2(logs_dir: Path) -> str:
    """log4j2 properties: the broker logs to ``<logs_dir>/server.log`` (rolled at 50 MB)."""
    return f"""\
# Written by newswire stack up (workshop/stack/kafka.py); edits are overwritten.
status = warn
name = newswire-kafka
# Kafka's own shutdown hook logs the controlled shutdown; log4j's would close the file first.
shutdownHook = disable
property.logs = {logs_dir}

appender.server.type = RollingFile
appender.server.name = server
appender.server.fileName = ${{logs}}/server.log
appender.server.filePattern = ${{logs}}/server.log.%i
appender.server.layout.type = PatternLayout
appender.server.layout.pattern = [%d] %p %m (%c)%n
appender.server.policies.type = Policies
appender.server.policies.size.type = SizeBasedTriggeringPolicy
appender.server.policies.size.size = 50MB
appender.server.strategy.type = DefaultRolloverStrategy
appender.server.strategy.max = 3

rootLogger.level = INFO
rootLogger.appenderRef.server.ref = server

logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.network.name = kafka.network.RequestChannel$
logger.network.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
"""


def jvm_args(heap: str, logs_dir: Path, log4j_file: Path) -> list[str]:
    """JVM options for the broker (the ones kafka-server-start.sh sets, with our heap)."""
    return [
        f"-Xmx{heap}",
        f"-Xms{heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dkafka.logs.dir={logs_dir}",
        f"-Dlog4j2.configurationFile={log4j_file}",
    ]


def run_coro(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, even inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_as_coroutine(factory))
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _as_coroutine(factory)).result()


async def _as_coroutine(factory: Callable[[], Awaitable[T]]) -> T:
    return await factory()


async def _broker_count(bootstrap: str, wait_s: float) -> int:
    from aiokafka.client import AIOKafkaClient

    client: Any = AIOKafkaClient(
        bootstrap_servers=bootstrap,
        client_id="newswire-stack",
        request_timeout_ms=int(wait_s * 1000),
    )
    try:
        async with asyncio.timeout(wait_s):
            await client.bootstrap()
        return len(client.cluster.brokers())
    finally:
        await client.close()


def metadata_brokers(bootstrap: str, timeout: float = 5.0) -> int:
    """How many brokers a metadata request to ``bootstrap`` lists (raises when it fails)."""
    return run_coro(lambda: _broker_count(bootstrap, timeout))


class KafkaServer:
    """Config files, formatting, start command and health check of the local broker."""

    name = NAME
    stop_timeout = STOP_TIMEOUT
    start_timeout = START_TIMEOUT
    java_range: tuple[int, int | None] = (JAVA_MIN, JAVA_MAX)

    def __init__(
        self,
        settings: Settings,
        home: Path,
        version: str,
        secure: SecureListener | None = None,
        member: ClusterMember | None = None,
    ) -> None:
        self.settings = settings
        self.secure = secure
        self.member = member
        self.home = home
        self.version = version
        self.port = settings.kafka_port
        self.controller_port = settings.kafka_controller_port
        self.node_id = member.node_id if member else NODE_ID
        # One node keeps the historical names (kafka, kafka.pid); a cluster's are numbered.
        self.name = f"{NAME}-{self.node_id}" if member else NAME
        self.base = home / self.name
        self.data_dir = self.base / "data"
        self.properties_file = self.base / "server.properties"
        self.log4j_file = self.base / "log4j2.properties"
        self.cluster_id_file = (home / "kafka-cluster.id") if member else self.base / "cluster.id"
        self.format_file = self.base / "formatted.json"
        self.logs_dir = home / "logs" / self.name
        self.log_file = self.logs_dir / "server.log"
        self.out_file = home / "logs" / f"{self.name}.out"
        self.pid_file = home / "run" / f"{self.name}.pid"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return self.bootstrap

    def marker_for(self) -> str:
        """A string in the broker's command line that ties it to this home."""
        return f"{MAIN_CLASS} {self.properties_file}"

    def config(self) -> KafkaConfig:
        return KafkaConfig(
            port=self.port,
            controller_port=self.controller_port,
            data_dir=self.data_dir,
            num_partitions=self.settings.topic_partitions,
            secure=self.secure,
            node_id=self.node_id,
            voters=self.member.voters if self.member else None,
            replication=self.member.replication if self.member else 1,
            min_insync=self.member.min_insync if self.member else 1,
        )

    def write_config(self) -> None:
        for d in (self.base, self.data_dir, self.logs_dir, self.pid_file.parent):
            d.mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text(render_server_properties(self.config()), encoding="utf-8")
        self.log4j_file.write_text(render_log4j2(self.logs_dir), encoding="utf-8")

    def cluster_id(self) -> str:
        try:
            existing = self.cluster_id_file.read_text(encoding="ascii").strip()
        except OSError:
            existing = ""
        if len(existing) == 22:
            return existing
        new = new_cluster_id()
        self.cluster_id_file.write_text(new + "\n", encoding="ascii")
        return new

    def is_formatted(self) -> bool:
        return (self.data_dir / "meta.properties").is_file()

    def format_storage(self, jdk: Jdk, artifacts: Artifacts) -> None:
        """Format the log dir once (``--standalone`` when this node is the only voter; a
        cluster's voters are static, ``controller.quorum.voters``, formatted without it)."""
        if self.is_formatted():
            self._check_format_matches()
            return
        cmd = [
            str(jdk.java),
            f"-Dlog4j2.configurationFile={self.log4j_file}",
            f"-Dkafka.logs.dir={self.logs_dir}",
            "-cp",
            f"{artifacts.kafka_lib}/*",
            "kafka.tools.StorageTool",
            "format",
            "-t",
            self.cluster_id(),
            "-c",
            str(self.properties_file),
            *(() if self.member else ("--standalone",)),
            "--ignore-formatted",
        ]
        for user in self.secure.users if self.secure else ():
            cmd += ["--add-scram", user.format_arg()]
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=180, check=False, cwd=self.base
            )
        except subprocess.TimeoutExpired as exc:
            raise StackError("formatting Kafka storage timed out", self.log_file) from exc
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip().splitlines()[-15:]
            raise StackError(
                "formatting Kafka storage failed:\n" + "\n".join(output), self.log_file
            )
        self.format_file.write_text(
            json.dumps({"controller_port": self.controller_port, "node_id": self.node_id}) + "\n",
            encoding="utf-8",
        )
        log.info("kafka storage formatted", data=str(self.data_dir))

    def _check_format_matches(self) -> None:
        try:
            recorded = json.loads(self.format_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        port = recorded.get("controller_port") if isinstance(recorded, dict) else None
        if port is not None and port != self.controller_port:
            raise StackError(
                f"the Kafka data in {self.data_dir} was formatted for controller port {port}, "
                f"not {self.controller_port}: set NEWSWIRE_KAFKA_CONTROLLER_PORT={port}, or "
                f"stop the stack and delete {self.base} to start afresh"
            )

    def argv(self, jdk: Jdk, artifacts: Artifacts) -> list[str]:
        return [
            str(jdk.java),
            *jvm_args(self.settings.kafka_heap, self.logs_dir, self.log4j_file),
            "-cp",
            f"{artifacts.kafka_lib}/*",
            MAIN_CLASS,
            str(self.properties_file),
        ]

    def start(self, jdk: Jdk, artifacts: Artifacts, run_as: RunAs | None = None) -> int:
        """Write config, format if needed and start the broker detached; return its pid."""
        del run_as  # the broker runs as the calling user
        self.write_config()
        self.format_storage(jdk, artifacts)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "JAVA_HOME": str(jdk.home),
        }
        return start_detached(
            self.argv(jdk, artifacts), cwd=self.base, env=env, out_file=self.out_file
        )

    def probe(self, timeout: float = 5.0) -> Probe:
        """Port open, and a metadata request lists at least one broker."""
        version = self.configured_version()
        if not port_open(self.port):
            return Probe(False, False, version, f"nothing listens on {self.bootstrap}")
        try:
            brokers = metadata_brokers(self.bootstrap, timeout)
        except Exception as exc:  # any client failure means "not ready yet"
            return Probe(True, False, version, f"metadata request failed: {exc!r}")
        if brokers < 1:
            return Probe(True, False, version, "metadata lists no broker yet")
        return Probe(True, True, version, f"{brokers} broker(s)")

    def configured_version(self) -> str:
        return self.version

    def log_files(self) -> tuple[Path, ...]:
        """Where to look when it fails: the console output, then the server log."""
        return (self.out_file, self.log_file)
