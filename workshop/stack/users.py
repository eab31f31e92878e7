"""The unprivileged system user a search node runs as when the stack is started as root.

Elasticsearch (and OpenSearch) refuse to run as root, so ``stack up`` as root creates a
system user once and hands it the node's own folders under ``NEWSWIRE_HOME``."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

import structlog

from pipeline.errors import StackError
from workshop.stack.process import RunAs

log = structlog.get_logger(__name__)

SYSTEM_USER = "newswire"


def ensure_system_user(name: str = SYSTEM_USER) -> RunAs | None:
    """When root, the unprivileged user the search node runs as (created if missing); None
    when we are not root (then the node simply runs as us)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        useradd = shutil.which("useradd")
        if useradd is None:
            raise StackError(
                f"the search engine refuses to run as root and the system user {name!r} is "
                "missing: install useradd (apt-get install passwd), or start the stack as an "
                "unprivileged user"
            ) from None
        done = subprocess.run(
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
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            reason = (done.stderr or done.stdout).strip().splitlines()
            raise StackError(
                f"the search engine refuses to run as root and creating the system user "
                f"{name!r} failed ({reason[-1] if reason else f'exit {done.returncode}'}): "
                f"create it yourself (useradd --system {name}) or start the stack as an "
                "unprivileged user"
            ) from None
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
