"""Stanford CoreNLP (the default entity recogniser) as a local server, resolved by Maven.

Self-contained: its own pom (``deploy/local/corenlp/pom.xml``) copies ``stanford-corenlp``
and its runtime jars and extracts ONE model file from the 474 MB ``models`` jar, once, into
``<dist>/corenlp-<version>/``. The server runs with ``tokenize,ssplit,ner`` only (the extras
off, see ``../shared/LOCAL-STACK.md``), one thread, and follows the manager's ``Server``
protocol, so ``newswire stack up`` starts it next to Kafka and the search engine.

CoreNLP is GPL-3.0: it runs as its own process and Newswire only talks HTTP to it.

The server has no bind-address option (it listens on every interface); it is started
IPv4-only with a block list of every subnet outside 127.0.0.0/8, so annotation requests
from any other address get 401. CoreNLP checks its block list only in its "-stanford"
mode, whose one other effect (shorter timeouts) applies only on corenlp.stanford.edu.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import structlog

from pipeline.errors import MissingDependencyError, StackError
from pipeline.settings import Settings
from workshop.stack.java import Jdk
from workshop.stack.process import Probe, RunAs, port_open, start_detached

log = structlog.get_logger(__name__)

Progress = Callable[[str], None]

NAME = "corenlp"
MAIN_CLASS = "edu.stanford.nlp.pipeline.StanfordCoreNLPServer"
JAVA_MIN, JAVA_MAX = 17, 25
STOP_TIMEOUT = 20.0
START_TIMEOUT = 120.0
POM = Path(__file__).resolve().parents[2] / "deploy" / "local" / "corenlp" / "pom.xml"
MODEL = "edu/stanford/nlp/models/ner/english.all.3class.distsim.crf.ser.gz"
MAVEN_INSTALL_HINT = "apt-get install maven openjdk-17-jdk-headless"
MARKER = ".resolved.json"
#: Every IPv4 subnet except 127.0.0.0/8: the server refuses clients from these.
NON_LOOPBACK_SUBNETS = (
    "0.0.0.0/2", "64.0.0.0/3", "96.0.0.0/4", "112.0.0.0/5", "120.0.0.0/6", "124.0.0.0/7",
    "126.0.0.0/8", "128.0.0.0/1",
)  # fmt: skip
_POM_NS = "{http://maven.apache.org/POM/4.0.0}"


def pom_version(pom: Path = POM) -> str:
    """The ``corenlp.version`` property of the pom."""
    try:
        root = ET.parse(pom).getroot()  # noqa: S314 - our own pom, not untrusted input
    except (OSError, ET.ParseError) as exc:
        raise StackError(f"cannot read the CoreNLP pom {pom}: {exc}") from exc
    node = root.find(f"{_POM_NS}properties/{_POM_NS}corenlp.version")
    if node is None or not (node.text or "").strip():
        raise StackError(f"{pom} lacks the property corenlp.version")
    return (node.text or "").strip()


def server_properties(model: Path) -> str:
    """The server's default annotation properties: the CRF alone, nothing else."""
    props = {
        "annotators": "tokenize,ssplit,ner",
        "enforceRequirements": "false",
        "ner.model": str(model),
        "ner.applyNumericClassifiers": "false",
        "ner.useSUTime": "false",
        "ner.applyFineGrained": "false",
        "ner.buildEntityMentions": "false",
        "ssplit.newlineIsSentenceBreak": "two",
        "outputFormat": "json",
    }
    lines = ["# Written by newswire stack up (workshop/stack/corenlp.py); edits are overwritten."]
    lines += [f"{k}={v}" for k, v in props.items()]
    return "\n".join(lines) + "\n"


class CoreNLPDist:
    """Where the resolved jars and the model file live (shared by every stack home)."""

    def __init__(self, dist_dir: Path, version: str, pom: Path = POM) -> None:
        self.pom = pom
        self.version = version
        self.root = dist_dir / f"corenlp-{version}"
        self.lib = self.root / "lib"
        self.models = self.root / "models"
        self.model = self.models / MODEL
        self.marker = self.root / MARKER

    def files_present(self) -> bool:
        return (self.lib / f"stanford-corenlp-{self.version}.jar").is_file() and (
            self.model.is_file()
        )

    def _digest(self) -> str:
        return hashlib.sha256(self.pom.read_bytes()).hexdigest()

    def is_resolved(self) -> bool:
        try:
            recorded = json.loads(self.marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return (
            isinstance(recorded, dict)
            and recorded.get("pom_sha256") == self._digest()
            and self.files_present()
        )

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.parent.mkdir(parents=True, exist_ok=True)
        with (self.root.parent / ".corenlp.lock").open("w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def maven_command(self, mvn: str) -> list[str]:
        return [
            mvn,
            "-B",
            "-Dstyle.color=never",
            "-f",
            str(self.pom),
            f"-Dnewswire.corenlp.lib={self.lib}",
            f"-Dnewswire.corenlp.models={self.models}",
            "dependency:copy-dependencies@corenlp",
            "dependency:unpack@corenlp-model",
        ]

    def resolve(self, jdk: Jdk, progress: Progress | None = None) -> None:
        """Copy the jars and extract the model once; a fast no-op afterwards."""
        say = progress or (lambda _msg: None)
        if self.is_resolved():
            return
        with self._lock():
            if self.is_resolved():
                return
            mvn = shutil.which("mvn")
            if mvn is None:
                raise MissingDependencyError("Maven (mvn)", MAVEN_INSTALL_HINT)
            say(f"resolving Stanford CoreNLP {self.version} with Maven (model jar: 474 MB once)")
            shutil.rmtree(self.root, ignore_errors=True)
            started = time.monotonic()
            try:
                done = subprocess.run(
                    self.maven_command(mvn),
                    capture_output=True,
                    text=True,
                    errors="replace",
                    env=dict(os.environ, JAVA_HOME=str(jdk.home)),
                    stdin=subprocess.DEVNULL,
                    timeout=3600,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise StackError("Maven did not resolve CoreNLP within an hour") from exc
            if done.returncode != 0 or not self.files_present():
                tail = "\n".join(done.stdout.splitlines()[-30:])
                raise StackError(
                    f"Maven could not resolve CoreNLP (exit {done.returncode}):\n{tail}"
                )
            self.marker.write_text(
                json.dumps({"pom_sha256": self._digest(), "version": self.version}) + "\n",
                encoding="utf-8",
            )
            elapsed = round(time.monotonic() - started, 1)
            log.info("corenlp resolved", seconds=elapsed, dist=str(self.root))
            say(f"CoreNLP resolved in {elapsed} s")


class CoreNLPServer:
    """Config, start command and health check of the local CoreNLP server."""

    name = NAME
    stop_timeout = STOP_TIMEOUT
    start_timeout = START_TIMEOUT
    java_range: tuple[int, int | None] = (JAVA_MIN, JAVA_MAX)

    def __init__(
        self,
        settings: Settings,
        home: Path,
        dist_dir: Path,
        progress: Progress | None = None,
        version: str | None = None,
    ) -> None:
        self.settings = settings
        self.home = home
        try:
            self.version = version or pom_version()
        except StackError:
            self.version = "unknown"
        self.dist = CoreNLPDist(dist_dir, self.version)
        self.port = settings.corenlp_port
        self.progress = progress
        self.base = home / "corenlp"
        self.properties_file = self.base / "server.properties"
        self.block_list_file = self.base / "blocklist.txt"
        self.log_file = home / "logs" / "corenlp.log"
        self.out_file = self.log_file
        self.pid_file = home / "run" / "corenlp.pid"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def endpoint(self) -> str:
        return self.url

    def marker_for(self) -> str:
        """A string in the server's command line that ties it to this home."""
        return f"-serverProperties {self.properties_file}"

    def write_config(self) -> None:
        for d in (self.base, self.log_file.parent, self.pid_file.parent):
            d.mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text(server_properties(self.dist.model), encoding="utf-8")
        self.block_list_file.write_text("\n".join(NON_LOOPBACK_SUBNETS) + "\n", encoding="utf-8")

    def argv(self, jdk: Jdk) -> list[str]:
        return [
            str(jdk.java),
            f"-Xmx{self.settings.corenlp_heap}",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.net.preferIPv4Stack=true",
            "-Djava.awt.headless=true",
            "-cp",
            f"{self.dist.lib}/*",
            MAIN_CLASS,
            "-port",
            str(self.port),
            "-threads",
            "1",
            "-timeout",
            "120000",
            "-maxCharLength",
            "1000000",
            "-quiet",
            "-stanford",  # turns the block list on (see the module docstring)
            "true",
            "-blockList",
            str(self.block_list_file),
            "-serverProperties",
            str(self.properties_file),
            "-preload",
            "tokenize,ssplit,ner",
        ]

    def start(self, jdk: Jdk, artifacts: Any = None, run_as: RunAs | None = None) -> int:
        """Resolve (once), write config and start the server detached; return its pid."""
        del artifacts, run_as  # own Maven resolution; runs as the calling user
        self.dist.resolve(jdk, self.progress)
        self.write_config()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "JAVA_HOME": str(jdk.home),
        }
        return start_detached(self.argv(jdk), cwd=self.base, env=env, out_file=self.out_file)

    def probe(self, timeout: float = 5.0) -> Probe:
        """Port open, ``/ready`` answers 200 (the model is loaded)."""
        if not port_open(self.port):
            return Probe(False, False, self.version, f"nothing listens on port {self.port}")
        try:
            reply = httpx.get(self.url + "ready", timeout=timeout)
        except httpx.HTTPError as exc:
            return Probe(True, False, self.version, f"/ready failed: {exc!r}")
        if reply.status_code != 200:
            return Probe(True, False, self.version, f"/ready answered {reply.status_code}")
        return Probe(True, True, self.version, "ready (tokenize,ssplit,ner)")

    def log_files(self) -> tuple[Path, ...]:
        return (self.out_file,)


@contextlib.contextmanager
def running_server(
    settings: Settings, home: Path, dist_dir: Path, progress: Progress | None = None
) -> Iterator[str]:
    """The URL of a healthy CoreNLP server on ``settings.corenlp_port``: an already running
    one, or one started here (and stopped on exit). For ``make eval`` and tests."""
    from workshop.stack.java import find_jdk
    from workshop.stack.process import is_alive, stop_process, write_pid

    server = CoreNLPServer(settings, home, dist_dir, progress)
    if server.probe().healthy:
        yield server.url
        return
    if port_open(server.port):
        raise StackError(f"port {server.port} is in use by something that is not CoreNLP")
    jdk = find_jdk(*server.java_range, purpose=f"CoreNLP {server.version}")
    pid = server.start(jdk)
    write_pid(server.pid_file, pid)
    try:
        deadline = time.monotonic() + server.start_timeout
        while not server.probe(timeout=2.0).healthy:
            if not is_alive(pid) or time.monotonic() > deadline:
                raise StackError("CoreNLP did not become ready", server.log_file)
            time.sleep(0.5)
        yield server.url
    finally:
        stop_process(pid, timeout=server.stop_timeout, marker=server.marker_for())
        server.pid_file.unlink(missing_ok=True)


def server_for_run(
    settings: Settings, purpose: str, progress: Progress | None = None
) -> contextlib.AbstractContextManager[str]:
    """:func:`running_server` for a one-off run (``newswire enrich``, ``make eval``): run
    files under ``<home>/<purpose>``, jars shared in ``<home>/dist`` like ``stack up``."""
    home = settings.home.expanduser().resolve()
    return running_server(settings, home / purpose, home / "dist", progress)
