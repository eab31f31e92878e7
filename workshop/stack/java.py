"""Find a JDK that suits a server: ``JAVA_HOME`` if it fits, else the newest in /usr/lib/jvm."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import MissingDependencyError

JVM_DIR = Path("/usr/lib/jvm")
INSTALL_HINT = "apt-get install openjdk-17-jdk-headless (or set JAVA_HOME to a JDK 17+)"
INSTALL_HINT_21 = (
    "install Temurin 25 (apt-get install temurin-25-jdk) or another JDK 21+, or set "
    "JAVA_HOME to one"
)

_RELEASE_RE = re.compile(r'^JAVA_VERSION="([^"]+)"', re.MULTILINE)
_VERSION_OUTPUT_RE = re.compile(r'version "([^"]+)"')


@dataclass(frozen=True)
class Jdk:
    """A Java installation: ``home`` (JAVA_HOME) and its feature version (17, 21, ...)."""

    home: Path
    version: str

    @property
    def feature(self) -> int:
        return java_feature(self.version)

    @property
    def java(self) -> Path:
        return self.home / "bin" / "java"


def java_feature(version: str) -> int:
    """The feature release of a Java version string: '17.0.15' -> 17, '1.8.0_392' -> 8."""
    parts = re.split(r"[.+_-]", version.strip())
    if not parts or not parts[0].isdigit():
        raise ValueError(f"not a Java version: {version!r}")
    first = int(parts[0])
    if first == 1 and len(parts) > 1 and parts[1].isdigit():
        return int(parts[1])
    return first


def jdk_version(home: Path) -> str | None:
    """The version of the JDK at ``home``: its ``release`` file, else ``java -version``."""
    java = home / "bin" / "java"
    if not java.is_file() or not os.access(java, os.X_OK):
        return None
    try:
        match = _RELEASE_RE.search((home / "release").read_text(encoding="utf-8"))
    except OSError:
        match = None
    if match:
        return match.group(1)
    try:
        out = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = _VERSION_OUTPUT_RE.search(out.stderr + out.stdout)
    return found.group(1) if found else None


def _candidates(jvm_dir: Path) -> list[Jdk]:
    found: dict[Path, Jdk] = {}
    if jvm_dir.is_dir():
        for entry in sorted(jvm_dir.iterdir()):
            real = entry.resolve()
            if real in found or not real.is_dir():
                continue
            version = jdk_version(real)
            if version is not None:
                found[real] = Jdk(real, version)
    on_path = shutil.which("java")
    if on_path:
        home = Path(on_path).resolve().parent.parent
        if home not in found and (version := jdk_version(home)) is not None:
            found[home] = Jdk(home, version)
    return list(found.values())


def find_jdk(
    minimum: int,
    maximum: int | None = None,
    *,
    purpose: str = "the local stack",
    java_home: str | None = None,
    jvm_dir: Path = JVM_DIR,
) -> Jdk:
    """``JAVA_HOME`` when it is within [minimum, maximum], else the newest JDK within it
    found under ``jvm_dir`` or on PATH; MissingDependencyError when there is none."""

    def fits(jdk: Jdk) -> bool:
        try:
            feature = jdk.feature
        except ValueError:
            return False
        return feature >= minimum and (maximum is None or feature <= maximum)

    env_home = java_home if java_home is not None else os.environ.get("JAVA_HOME")
    if env_home:
        home = Path(env_home).resolve()
        version = jdk_version(home)
        if version is not None and fits(Jdk(home, version)):
            return Jdk(home, version)
    suitable = [j for j in _candidates(jvm_dir) if fits(j)]
    if not suitable:
        wanted = f"Java {minimum}+" if maximum is None else f"Java {minimum} to {maximum}"
        hint = INSTALL_HINT_21 if minimum >= 21 else INSTALL_HINT
        raise MissingDependencyError(f"{wanted} for {purpose}", hint)
    return max(suitable, key=lambda j: (j.feature, j.version))
