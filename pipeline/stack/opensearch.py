"""OpenSearch 2.19 from the integ-test-zip, run as an unprivileged user, plus extra modules."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import structlog

from pipeline.errors import MissingDependencyError, StackError
from pipeline.settings import Settings
from pipeline.stack.java import Jdk
from pipeline.stack.maven import Artifacts
from pipeline.stack.process import Probe, RunAs, port_open, start_detached

log = structlog.get_logger(__name__)

NAME = "opensearch"
ENGINE = "opensearch"
SYSTEM_USER = "newswire"
CLUSTER_NAME = "newswire-local"
# OpenSearch 2.x installs a SecurityManager, which Java 24+ no longer has; 2.19 bundles 21.
JAVA_MIN, JAVA_MAX = 17, 21
STOP_TIMEOUT = 30.0
START_TIMEOUT = 120.0


@dataclass(frozen=True)
class ModuleSpec:
    """A server module published as a plain jar, installed with a descriptor we write."""

    name: str
    classname: str
    description: str
    jar_prefix: str


# The jar needs nothing beyond the distribution's lib/ (lucene-analysis-common is there).
# Its painless whitelist extension (META-INF/services) stays unused: no lang-painless.
MODULES = (
    ModuleSpec(
        name="analysis-common",
        classname="org.opensearch.analysis.common.CommonAnalysisPlugin",
        description='Adds "built in" analyzers to OpenSearch.',
        jar_prefix="analysis-common-",
    ),
)


def render_plugin_descriptor(spec: ModuleSpec, opensearch_version: str) -> str:
    """The plugin-descriptor.properties OpenSearch reads for a module directory."""
    return (
        "# Written by newswire (pipeline/stack/search.py)\n"
        f"description={spec.description}\n"
        f"version={opensearch_version}\n"
        f"name={spec.name}\n"
        f"classname={spec.classname}\n"
        "java.version=11\n"
        f"opensearch.version={opensearch_version}\n"
        "custom.foldername=\n"
        "extended.plugins=\n"
        "has.native.controller=false\n"
    )


def install_modules(artifacts: Artifacts) -> list[str]:
    """Put the extra module jars into ``<opensearch home>/modules/<name>/``; idempotent.

    Returns the names of the modules installed (already or now)."""
    installed: list[str] = []
    version = artifacts.versions.opensearch
    for spec in MODULES:
        jars = sorted(artifacts.opensearch_modules.glob(f"{spec.jar_prefix}*.jar"))
        if not jars:
            continue
        target = artifacts.opensearch_home / "modules" / spec.name
        descriptor = target / "plugin-descriptor.properties"
        text = render_plugin_descriptor(spec, version)
        if (
            (target / jars[0].name).is_file()
            and descriptor.is_file()
            and descriptor.read_text(encoding="utf-8") == text
        ):
            installed.append(spec.name)
            continue
        target.mkdir(parents=True, exist_ok=True)
        target.chmod(0o755)
        shutil.copyfile(jars[0], target / jars[0].name)
        (target / jars[0].name).chmod(0o644)
        descriptor.write_text(text, encoding="utf-8")
        descriptor.chmod(0o644)
        installed.append(spec.name)
    return installed


_HEAP_RE = re.compile(r"^\s*(?:\d+-?\d*:)?-Xm[sx]\S*\s*$")


def render_jvm_options(original: str, data_dir: Path, logs_dir: Path) -> str:
    """The distribution's jvm.options without heap lines (the heap comes from
    OPENSEARCH_JAVA_OPTS) and with its cwd-relative paths made absolute."""
    out: list[str] = ["## Written by newswire from the distribution's jvm.options"]
    for line in original.splitlines():
        if _HEAP_RE.match(line):
            continue
        line = line.replace("file=logs/gc.log", f"file={logs_dir}/gc.log")
        line = line.replace("-XX:ErrorFile=logs/", f"-XX:ErrorFile={logs_dir}/")
        line = line.replace("-XX:HeapDumpPath=data", f"-XX:HeapDumpPath={data_dir}")
        out.append(line)
    return "\n".join(out) + "\n"


def node_settings(
    *, http_port: int, transport_port: int, data_dir: Path, logs_dir: Path
) -> dict[str, str]:
    """The -E settings of the local node."""
    return {
        "cluster.name": CLUSTER_NAME,
        "node.name": CLUSTER_NAME,
        "discovery.type": "single-node",
        "network.host": "127.0.0.1",
        "http.port": str(http_port),
        "transport.port": str(transport_port),
        "path.data": str(data_dir),
        "path.logs": str(logs_dir),
        # A nearly full dev disk would otherwise turn every index read-only.
        "cluster.routing.allocation.disk.threshold_enabled": "false",
        "action.destructive_requires_name": "false",
    }


def ensure_system_user(name: str = SYSTEM_USER) -> RunAs | None:
    """When root, the unprivileged user OpenSearch runs as (created if missing); None when
    we are not root (then OpenSearch simply runs as us)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        useradd = shutil.which("useradd")
        if useradd is None:
            raise MissingDependencyError(
                "useradd (to create the search user)", "apt-get install passwd"
            ) from None
        subprocess.run(
            [
                useradd,
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ],
            check=True,
            capture_output=True,
        )
        log.info("created system user for the search engine", user=name)
        entry = pwd.getpwnam(name)
    return RunAs(name=name, uid=entry.pw_uid, gid=entry.pw_gid)


def make_traversable(path: Path) -> list[Path]:
    """Add 'others may enter' (o+x) to every ancestor directory of ``path`` lacking it, so
    that the search user reaches its folders; returns the directories changed."""
    changed: list[Path] = []
    for d in [*reversed(path.resolve().parents), path.resolve()]:
        try:
            mode = d.stat().st_mode
        except OSError:
            break
        if not mode & stat.S_IXOTH:
            d.chmod(mode | stat.S_IXOTH)
            changed.append(d)
    if changed:
        log.warning(
            "made directories traversable for the search user", dirs=[str(d) for d in changed]
        )
    return changed


def chown_tree(root: Path, run_as: RunAs) -> None:
    """Give ``root`` and everything below it to ``run_as``."""
    for dirpath, dirnames, filenames in os.walk(root):
        os.chown(dirpath, run_as.uid, run_as.gid)
        for name in [*dirnames, *filenames]:
            os.chown(Path(dirpath) / name, run_as.uid, run_as.gid, follow_symlinks=False)


class SearchServer:
    """Config, start command and health check of the local OpenSearch node."""

    name = NAME
    stop_timeout = STOP_TIMEOUT
    start_timeout = START_TIMEOUT
    java_range = (JAVA_MIN, JAVA_MAX)

    def __init__(self, settings: Settings, home: Path, version: str) -> None:
        self.settings = settings
        self.home = home
        self.version = version
        self.port = settings.search_port
        self.transport_port = settings.search_transport_port
        self.base = home / "search"
        self.config_dir = self.base / "config"
        self.data_dir = self.base / "data"
        self.tmp_dir = self.base / "tmp"
        self.logs_dir = home / "logs" / "search"
        self.log_file = self.logs_dir / f"{CLUSTER_NAME}.log"
        self.out_file = home / "logs" / "search.out"
        self.pid_file = home / "run" / "search.pid"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return self.url

    def marker_for(self) -> str:
        """A string in the node's command line that ties it to this home."""
        return f"-Dopensearch.path.conf={self.config_dir}"

    def write_config(self, artifacts: Artifacts, run_as: RunAs | None) -> None:
        dist_config = artifacts.opensearch_home / "config"
        for d in (self.config_dir / "jvm.options.d", self.data_dir, self.tmp_dir, self.logs_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        jvm_options = render_jvm_options(
            (dist_config / "jvm.options").read_text(encoding="utf-8"), self.data_dir, self.logs_dir
        )
        (self.config_dir / "jvm.options").write_text(jvm_options, encoding="utf-8")
        shutil.copyfile(dist_config / "log4j2.properties", self.config_dir / "log4j2.properties")
        (self.config_dir / "opensearch.yml").write_text(
            "# Written by newswire; the node's settings are passed as -E options.\n",
            encoding="utf-8",
        )
        if run_as is not None:
            for root in (self.base, self.logs_dir):
                make_traversable(root)
                chown_tree(root, run_as)
            make_traversable(artifacts.opensearch_home / "bin")

    def argv(self, artifacts: Artifacts) -> list[str]:
        settings = node_settings(
            http_port=self.port,
            transport_port=self.transport_port,
            data_dir=self.data_dir,
            logs_dir=self.logs_dir,
        )
        return [
            str(artifacts.opensearch_home / "bin" / "opensearch"),
            *(f"-E{key}={value}" for key, value in settings.items()),
        ]

    def environment(self, jdk: Jdk) -> dict[str, str]:
        heap = self.settings.search_heap
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(self.base),
            "OPENSEARCH_JAVA_HOME": str(jdk.home),
            "OPENSEARCH_PATH_CONF": str(self.config_dir),
            "OPENSEARCH_TMPDIR": str(self.tmp_dir),
            "OPENSEARCH_JAVA_OPTS": f"-Xms{heap} -Xmx{heap}",
        }

    def start(self, jdk: Jdk, artifacts: Artifacts, run_as: RunAs | None = None) -> int:
        """Write config and start the node detached as ``run_as``; return its pid."""
        if not (artifacts.opensearch_home / "bin" / "opensearch").is_file():
            raise StackError(f"no OpenSearch distribution in {artifacts.opensearch_home}")
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
                root = client.get("/")
                root.raise_for_status()
                version = root.json().get("version", {}).get("number")
                health = client.get("/_cluster/health")
                health.raise_for_status()
                status = health.json().get("status")
        except (httpx.HTTPError, ValueError) as exc:
            return Probe(True, False, None, f"HTTP check failed: {exc!r}")
        healthy = status in {"yellow", "green"}
        return Probe(True, healthy, version, f"cluster status {status}")

    def log_files(self) -> tuple[Path, ...]:
        """Where to look when it fails: the console output, then the server log."""
        return (self.out_file, self.log_file)
