"""Resolve the servers' jars and distributions from Maven Central with deploy/local/pom.xml."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog

from pipeline.errors import MissingDependencyError, StackError
from workshop.stack.java import Jdk

log = structlog.get_logger(__name__)

Progress = Callable[[str], None]

DEFAULT_POM = Path(__file__).resolve().parents[2] / "deploy" / "local" / "pom.xml"
MAVEN_INSTALL_HINT = "apt-get install maven openjdk-17-jdk-headless"
_POM_NS = "{http://maven.apache.org/POM/4.0.0}"
_DOWNLOAD_RE = re.compile(r"^\[INFO\] Download(ing|ed) from [^:]+: (\S+)(?: \((\S+ \S*B)\b)?")
_EXECUTION_RE = re.compile(r"^\[INFO\] --- maven-dependency-plugin:[^:]+:(\S+) \((\S+)\)")


Component = Literal["kafka", "elasticsearch", "opensearch"]


@dataclass(frozen=True)
class StackVersions:
    """The server versions pinned in the pom (``elasticsearch.version`` is the one version
    constant of the local Elasticsearch; docker-compose.yml and deploy/kibana/ follow it)."""

    kafka: str
    elasticsearch: str
    opensearch: str
    log4j: str


def read_versions(pom: Path) -> StackVersions:
    """Read the ``*.version`` properties of the servers."""
    try:
        root = ET.parse(pom).getroot()  # noqa: S314 - our own pom, not untrusted input
    except (OSError, ET.ParseError) as exc:
        raise StackError(f"cannot read the local stack pom {pom}: {exc}") from exc
    props = root.find(f"{_POM_NS}properties")
    values: dict[str, str] = {}
    if props is not None:
        for child in props:
            values[child.tag.removeprefix(_POM_NS)] = (child.text or "").strip()
    try:
        return StackVersions(
            kafka=values["kafka.version"],
            elasticsearch=values["elasticsearch.version"],
            opensearch=values["opensearch.version"],
            log4j=values["log4j.version"],
        )
    except KeyError as exc:
        raise StackError(f"{pom} lacks the property {exc.args[0]}") from exc


@dataclass(frozen=True)
class Artifacts:
    """Where the resolved servers live under ``dist_dir`` (shared by every stack home)."""

    dist_dir: Path
    versions: StackVersions

    @property
    def kafka_lib(self) -> Path:
        return self.dist_dir / f"kafka-{self.versions.kafka}"

    @property
    def kafka_jar(self) -> Path:
        return self.kafka_lib / f"kafka_2.13-{self.versions.kafka}.jar"

    @property
    def elasticsearch_home(self) -> Path:
        return self.dist_dir / f"elasticsearch-{self.versions.elasticsearch}"

    @property
    def opensearch_home(self) -> Path:
        return self.dist_dir / f"opensearch-{self.versions.opensearch}"

    @property
    def opensearch_modules(self) -> Path:
        """Module jars the integ-test-zip lacks (installed into ``opensearch_home``)."""
        return self.dist_dir / f"opensearch-modules-{self.versions.opensearch}"

    def marker(self, component: Component) -> Path:
        return self.dist_dir / f".resolved-{component}.json"

    def files_present(self, component: Component) -> bool:
        """Whether the files of ``component`` that the servers need are in place."""
        v = self.versions
        if component == "kafka":
            return self.kafka_jar.is_file()
        if component == "elasticsearch":
            home = self.elasticsearch_home
            return (home / "bin" / "elasticsearch").is_file() and (
                home / "lib" / f"elasticsearch-{v.elasticsearch}.jar"
            ).is_file()
        home = self.opensearch_home
        return (
            (home / "bin" / "opensearch").is_file()
            and (home / "lib" / f"opensearch-{v.opensearch}.jar").is_file()
            and any(self.opensearch_modules.glob("analysis-common-*.jar"))
        )

    def paths(self, component: Component) -> tuple[Path, ...]:
        """What a fresh resolution of ``component`` replaces."""
        if component == "kafka":
            return (self.kafka_lib,)
        if component == "elasticsearch":
            return (self.elasticsearch_home, self.dist_dir / ".markers" / "elasticsearch")
        return (
            self.opensearch_home,
            self.opensearch_modules,
            self.dist_dir / ".markers" / "opensearch",
        )


def pom_digest(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def is_resolved(artifacts: Artifacts, pom: Path, component: Component) -> bool:
    """True when a previous resolution of this very pom left ``component``'s files in place."""
    try:
        recorded = json.loads(artifacts.marker(component).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(recorded, dict)
        and recorded.get("pom_sha256") == pom_digest(pom)
        and artifacts.files_present(component)
    )


# The pom executions that resolve each component.
EXECUTIONS: dict[Component, tuple[str, ...]] = {
    "kafka": ("dependency:copy-dependencies@kafka",),
    "elasticsearch": ("dependency:unpack@elasticsearch",),
    "opensearch": ("dependency:unpack@opensearch", "dependency:copy@opensearch-modules"),
}


def maven_command(
    mvn: str, pom: Path, artifacts: Artifacts, components: Sequence[Component]
) -> list[str]:
    """One Maven run with the executions that resolve ``components``."""
    return [
        mvn,
        "-B",
        "-Dstyle.color=never",
        "-f",
        str(pom),
        f"-Dnewswire.kafka.lib={artifacts.kafka_lib}",
        f"-Dnewswire.dist={artifacts.dist_dir}",
        f"-Dnewswire.opensearch.modules={artifacts.opensearch_modules}",
        *(goal for component in components for goal in EXECUTIONS[component]),
    ]


def progress_message(line: str) -> str | None:
    """A short progress message for a line of Maven output, or None for noise."""
    line = line.rstrip()
    if match := _DOWNLOAD_RE.match(line):
        name = match.group(2).rsplit("/", 1)[-1]
        if match.group(1) == "ing":
            return f"downloading {name}"
        size = f" ({match.group(3)})" if match.group(3) else ""
        return f"downloaded {name}{size}"
    if match := _EXECUTION_RE.match(line):
        return f"maven {match.group(1)} ({match.group(2)})"
    if line.startswith("[ERROR]") and line.strip() != "[ERROR]":
        return line
    return None


@contextlib.contextmanager
def dist_lock(dist_dir: Path) -> Iterator[None]:
    dist_dir.mkdir(parents=True, exist_ok=True)
    with (dist_dir / ".lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def make_world_readable(root: Path) -> None:
    """Give 'other' read access (and traversal for directories) below ``root``: the
    unprivileged search user reads the distribution even under a strict umask."""
    for dirpath, _dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        mode = d.stat().st_mode
        if mode & 0o005 != 0o005:
            d.chmod(mode | 0o005)
        for name in filenames:
            f = d / name
            if f.is_symlink():
                continue
            mode = f.stat().st_mode
            wanted = mode | 0o004 | (0o001 if mode & 0o100 else 0)
            if wanted != mode:
                f.chmod(wanted)


def resolve(
    pom: Path,
    dist_dir: Path,
    jdk: Jdk,
    progress: Progress | None = None,
    components: Sequence[Component] = ("kafka", "elasticsearch"),
) -> Artifacts:
    """Make sure the files of ``components`` are under ``dist_dir``.

    Fast no-op when a previous run of the same pom left them in place; otherwise runs Maven
    (streaming its download lines to ``progress``) for what is missing, into a clean layout."""
    say = progress or (lambda _msg: None)
    artifacts = Artifacts(dist_dir.resolve(), read_versions(pom))

    def missing() -> list[Component]:
        return [c for c in components if not is_resolved(artifacts, pom, c)]

    if not missing():
        return artifacts
    with dist_lock(artifacts.dist_dir):
        todo = missing()  # another process may have finished while we waited
        if not todo:
            return artifacts
        mvn = shutil.which("mvn")
        if mvn is None:
            raise MissingDependencyError("Maven (mvn)", MAVEN_INSTALL_HINT)
        v = artifacts.versions
        names = ", ".join(f"{c} {getattr(v, c)}" for c in todo)
        say(f"resolving {names} with Maven")
        for component in todo:
            artifacts.marker(component).unlink(missing_ok=True)
            for stale in artifacts.paths(component):
                shutil.rmtree(stale, ignore_errors=True)
        env = dict(os.environ, JAVA_HOME=str(jdk.home))
        cmd = maven_command(mvn, pom, artifacts, todo)
        started = time.monotonic()
        tail: list[str] = []
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            text=True,
            errors="replace",
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            tail = [*tail[-39:], line.rstrip()]
            if (msg := progress_message(line)) is not None:
                say(msg)
        code = proc.wait()
        if code != 0 or not all(artifacts.files_present(c) for c in todo):
            output = "\n".join(tail)
            raise StackError(f"Maven could not resolve the local stack (exit {code}):\n{output}")
        for component in todo:
            if component != "kafka":
                make_world_readable(artifacts.paths(component)[0])
            artifacts.marker(component).write_text(
                json.dumps({"pom_sha256": pom_digest(pom), "versions": v.__dict__}, indent=2)
                + "\n",
                encoding="utf-8",
            )
        elapsed = round(time.monotonic() - started, 1)
        log.info("local stack resolved", seconds=elapsed, dist=str(artifacts.dist_dir))
        say(f"resolved in {elapsed} s")
    return artifacts
