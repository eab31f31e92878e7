"""Background server processes: detached start, pid files, liveness, bounded stop."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)

# Popen objects of servers started by this Python process. Holding them keeps Python from
# warning about a "still running" child, and lets ``is_alive`` reap them once they exit.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class RunAs:
    """An unprivileged user to run a server as (only used when we are root)."""

    name: str
    uid: int
    gid: int


@dataclass(frozen=True)
class Probe:
    """What a health check of a server found."""

    port_open: bool
    healthy: bool
    version: str | None
    detail: str


def read_pid(pid_file: Path) -> int | None:
    """The pid in ``pid_file``, or None when the file is missing or unreadable."""
    try:
        text = pid_file.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def write_pid(pid_file: Path, pid: int) -> None:
    """Write ``pid`` atomically (a reader never sees a half-written file)."""
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = pid_file.with_name(pid_file.name + ".tmp")
    tmp.write_text(f"{pid}\n", encoding="ascii")
    tmp.replace(pid_file)


def remove_pid(pid_file: Path) -> None:
    """Remove ``pid_file`` if it exists."""
    pid_file.unlink(missing_ok=True)


def _reap(pid: int) -> None:
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is not None:
            _CHILDREN.pop(pid, None)
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _proc_state(pid: int) -> str | None:
    """The one-letter state from /proc/<pid>/stat (R, S, Z, ...), None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces: split after the last ')'.
    rest = stat.rsplit(")", 1)[-1].split()
    return rest[0] if rest else None


def cmdline(pid: int) -> str:
    """The command line of ``pid`` joined by spaces ('' when unknown)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode("utf-8", errors="replace").strip()


def is_alive(pid: int | None, marker: str | None = None) -> bool:
    """True when ``pid`` runs (zombies do not count) and, if given, its command line
    contains ``marker`` (guards against a recycled pid after a reboot or crash)."""
    if pid is None or pid <= 0:
        return False
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    state = _proc_state(pid)
    if state is None or state in {"Z", "X"}:
        return False
    return marker is None or marker in cmdline(pid)


def rss_bytes(pid: int | None) -> int | None:
    """Resident set size of ``pid`` in bytes, from /proc (None if unknown)."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def tree_rss_bytes(pid: int | None) -> int | None:
    """Resident memory of ``pid`` and all its descendants (a launcher and its server JVM)."""
    if pid is None:
        return None
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text(encoding="utf-8", errors="replace")
            ppid = int(text.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    total, todo, found = 0, [pid], False
    while todo:
        current = todo.pop()
        rss = rss_bytes(current)
        if rss is not None:
            total += rss
            found = True
        todo.extend(children.get(current, []))
    return total if found else None


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def start_detached(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    out_file: Path,
    run_as: RunAs | None = None,
) -> int:
    """Start ``argv`` in its own session (it outlives this Python process), with stdout
    and stderr appended to ``out_file``; return its pid."""
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with out_file.open("ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {argv[0]}\n".encode())
        out.flush()
        identity: dict[str, Any] = (
            {"user": run_as.uid, "group": run_as.gid, "extra_groups": []} if run_as else {}
        )
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            **identity,
        )
    _CHILDREN[proc.pid] = proc
    log.debug("process started", pid=proc.pid, argv0=argv[0], out=str(out_file))
    return proc.pid


def signal_process(pid: int, sig: signal.Signals, *, group: bool = False) -> None:
    """Send ``sig`` to ``pid`` (or its process group), ignoring a process already gone."""
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def wait_exit(pids: Sequence[int], timeout: float, marker: str | None = None) -> list[int]:
    """Wait up to ``timeout`` seconds for every pid to exit; return those still alive."""
    deadline = time.monotonic() + timeout
    alive = [p for p in pids if is_alive(p, marker)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in alive if is_alive(p, marker)]
    return alive


def stop_process(pid: int, *, timeout: float, marker: str | None = None) -> bool:
    """SIGTERM, wait up to ``timeout`` s, then SIGKILL the whole session.

    Returns True when the process had to be killed."""
    if not is_alive(pid, marker):
        return False
    signal_process(pid, signal.SIGTERM)
    if not wait_exit([pid], timeout, marker):
        return False
    log.warning("process ignored SIGTERM, killing it", pid=pid, waited_s=timeout)
    signal_process(pid, signal.SIGKILL, group=True)
    signal_process(pid, signal.SIGKILL)
    wait_exit([pid], 10.0, marker)
    return True


def file_size(path: Path) -> int:
    """Size of ``path`` in bytes, 0 when it does not exist."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def tail_lines(
    path: Path, lines: int = 20, max_bytes: int = 64 * 1024, since: int = 0
) -> list[str]:
    """The last ``lines`` lines of a text file written after byte offset ``since`` (empty
    if it does not exist; the whole file when it shrank, i.e. was rotated)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            start = since if since <= size else 0
            fh.seek(max(start, size - max_bytes))
            data = fh.read()
    except OSError:
        return []
    text = data.decode("utf-8", errors="replace").splitlines()
    return text[-lines:]


def find_pids(marker: str) -> list[int]:
    """Pids of live processes whose command line contains ``marker`` (for a lost pid file)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid != os.getpid() and marker in cmdline(pid) and is_alive(pid):
            found.append(pid)
    return sorted(found)
