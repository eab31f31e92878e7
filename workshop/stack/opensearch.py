"""OpenSearch 2.19 from the integ-test-zip plus its analysis-common module (the optional
engine, ``NEWSWIRE_SEARCH_ENGINE=opensearch``)."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from workshop.stack.java import Jdk
from workshop.stack.maven import Artifacts, Progress
from workshop.stack.search import SearchNode, copy_config_file

# OpenSearch 2.x installs a SecurityManager, which Java 24+ no longer has; 2.19 bundles 21.
JAVA_MIN, JAVA_MAX = 17, 21


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
        "# Written by newswire (workshop/stack/opensearch.py)\n"
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


class OpenSearchNode(SearchNode):
    """The local OpenSearch node."""

    name = "opensearch"
    component = "opensearch"
    java_range = (JAVA_MIN, JAVA_MAX)

    def distribution(self, artifacts: Artifacts) -> Path:
        return artifacts.opensearch_home

    def marker_for(self) -> str:
        return f"-Dopensearch.path.conf={self.config_dir}"

    def prepare(self, jdk: Jdk, artifacts: Artifacts, progress: Progress) -> list[str]:
        return install_modules(artifacts)

    def write_engine_config(self, dist_config: Path) -> None:
        jvm_options = render_jvm_options(
            (dist_config / "jvm.options").read_text(encoding="utf-8"), self.data_dir, self.logs_dir
        )
        (self.config_dir / "jvm.options").write_text(jvm_options, encoding="utf-8")
        copy_config_file(dist_config / "log4j2.properties", self.config_dir / "log4j2.properties")
        (self.config_dir / "opensearch.yml").write_text(
            "# Written by newswire; the node's settings are passed as -E options.\n"
            f"path.repo: [{json.dumps(str(self.snapshot_dir))}]\n",
            encoding="utf-8",
        )

    def environment(self, jdk: Jdk) -> dict[str, str]:
        heap = self.settings.search_heap
        return {
            **self.base_environment(),
            "OPENSEARCH_JAVA_HOME": str(jdk.home),
            "OPENSEARCH_PATH_CONF": str(self.config_dir),
            "OPENSEARCH_TMPDIR": str(self.tmp_dir),
            "OPENSEARCH_JAVA_OPTS": f"-Xms{heap} -Xmx{heap}",
        }
