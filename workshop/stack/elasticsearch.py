"""Elasticsearch 9 from the integ-test-zip on Maven Central (the default local engine), with
the project's English analysis plugin built and installed into it.

That build holds only four modules (no analysis-common), so ``deploy/local/analysis-english``
provides the ``english`` analyzer and the ``stemmer``/``asciifolding`` token filters that
production Elasticsearch has built in; the index template is then the same as production's."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import structlog

from pipeline.errors import MissingDependencyError, StackError
from workshop.stack.java import Jdk
from workshop.stack.maven import (
    MAVEN_INSTALL_HINT,
    Artifacts,
    Progress,
    dist_lock,
    make_world_readable,
)
from workshop.stack.search import SearchNode, copy_config_file

log = structlog.get_logger(__name__)

# Elasticsearch 9 needs Java 21 or newer (it runs here on Temurin 25).
JAVA_MIN = 21
PLUGIN_SOURCE = Path(__file__).resolve().parents[2] / "deploy" / "local" / "analysis-english"
PLUGIN_NAME = "newswire-analysis-english"
_LUCENE_JAR_RE = re.compile(r"^lucene-core-(\d[\w.]*)\.jar$")
# The plugin installer runs out of memory at its default 64 MB heap.
_INSTALLER_HEAP = "-Xmx512m"


def lucene_version(es_home: Path) -> str:
    """The Lucene version the distribution ships (the plugin compiles against it)."""
    for jar in sorted((es_home / "lib").glob("lucene-core-*.jar")):
        if match := _LUCENE_JAR_RE.match(jar.name):
            return match.group(1)
    raise StackError(f"no lucene-core jar in {es_home / 'lib'}")


def plugin_source_digest(source: Path = PLUGIN_SOURCE) -> str:
    """SHA-256 over the plugin's pom and sources: a change rebuilds and reinstalls it."""
    digest = hashlib.sha256()
    files = [source / "pom.xml", *sorted((source / "src").rglob("*"))]
    for path in files:
        if path.is_file():
            digest.update(path.relative_to(source).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _run(cmd: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(
        cmd, env=env, capture_output=True, text=True, errors="replace", check=False
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        raise StackError(f"{what} failed (exit {done.returncode}):\n{tail}")


def ensure_analysis_plugin(
    artifacts: Artifacts, jdk: Jdk, progress: Progress, source: Path = PLUGIN_SOURCE
) -> str:
    """Build ``deploy/local/analysis-english`` with Maven for the node's exact version and
    install it into the distribution; a no-op when the same sources are installed."""
    es_home = artifacts.elasticsearch_home
    version = artifacts.versions.elasticsearch
    marker = artifacts.dist_dir / f".plugin-{PLUGIN_NAME}-{version}.json"
    wanted = {"source_sha256": plugin_source_digest(source), "elasticsearch": version}

    def installed() -> bool:
        try:
            return bool(
                json.loads(marker.read_text(encoding="utf-8")) == wanted
                and (es_home / "plugins" / PLUGIN_NAME).is_dir()
            )
        except (OSError, ValueError):
            return False

    if installed():
        return PLUGIN_NAME
    with dist_lock(artifacts.dist_dir):
        if installed():
            return PLUGIN_NAME
        mvn = shutil.which("mvn")
        if mvn is None:
            raise MissingDependencyError("Maven (mvn)", MAVEN_INSTALL_HINT)
        started = time.monotonic()
        progress(f"building the English analysis plugin for Elasticsearch {version}")
        env = {**os.environ, "JAVA_HOME": str(jdk.home)}
        _run(
            [
                mvn,
                "-B",
                "-q",
                "-Dstyle.color=never",
                "-f",
                str(source / "pom.xml"),
                f"-Delasticsearch.version={version}",
                f"-Dlucene.version={lucene_version(es_home)}",
                "clean",
                "package",
            ],
            env,
            "building the analysis plugin (deploy/local/analysis-english)",
        )
        zips = sorted((source / "target").glob(f"{PLUGIN_NAME}-*-es{version}.zip"))
        if len(zips) != 1:
            raise StackError(f"the plugin build left {len(zips)} zip files in {source / 'target'}")
        tool = str(es_home / "bin" / "elasticsearch-plugin")
        tool_env = {**env, "ES_JAVA_HOME": str(jdk.home), "CLI_JAVA_OPTS": _INSTALLER_HEAP}
        if (es_home / "plugins" / PLUGIN_NAME).exists():
            _run([tool, "remove", PLUGIN_NAME], tool_env, "removing the old analysis plugin")
        progress(f"installing {zips[0].name} into Elasticsearch {version}")
        _run(
            [tool, "install", "--batch", zips[0].resolve().as_uri()],
            tool_env,
            "installing the analysis plugin",
        )
        make_world_readable(es_home / "plugins")  # the node runs as the unprivileged user
        marker.write_text(json.dumps(wanted, indent=2) + "\n", encoding="utf-8")
        took = round(time.monotonic() - started, 1)
        log.info("analysis plugin installed", plugin=PLUGIN_NAME, seconds=took)
        progress(f"analysis plugin installed ({took} s)")
    return PLUGIN_NAME


class ElasticsearchNode(SearchNode):
    """The local Elasticsearch node (security off: it listens on loopback only)."""

    name = "elasticsearch"
    component = "elasticsearch"
    java_range = (JAVA_MIN, None)

    def distribution(self, artifacts: Artifacts) -> Path:
        return artifacts.elasticsearch_home

    def marker_for(self) -> str:
        # The launcher JVM (our pid) carries it: CLI_JAVA_OPTS below.
        return f"-Dnewswire.search.conf={self.config_dir}"

    def prepare(self, jdk: Jdk, artifacts: Artifacts, progress: Progress) -> list[str]:
        return [ensure_analysis_plugin(artifacts, jdk, progress)]

    def write_engine_config(self, dist_config: Path) -> None:
        # jvm.options' relative paths (gc.log, hs_err) land in the logs folder, the server's
        # working directory; the heap comes from ES_JAVA_OPTS.
        for name in (
            "jvm.options", "log4j2.properties", "roles.yml", "role_mapping.yml", "users",
            "users_roles",
        ):  # fmt: skip
            copy_config_file(dist_config / name, self.config_dir / name)
        (self.config_dir / "elasticsearch.yml").write_text(
            "# Written by newswire; the other settings are passed as -E options.\n"
            "xpack.security.enabled: false\n"
            f"path.repo: [{json.dumps(str(self.snapshot_dir))}]\n",
            encoding="utf-8",
        )

    def environment(self, jdk: Jdk) -> dict[str, str]:
        heap = self.settings.search_heap
        return {
            **self.base_environment(),
            "ES_JAVA_HOME": str(jdk.home),
            "ES_PATH_CONF": str(self.config_dir),
            "ES_TMPDIR": str(self.tmp_dir),
            "ES_JAVA_OPTS": f"-Xms{heap} -Xmx{heap}",
            "CLI_JAVA_OPTS": self.marker_for(),
        }
