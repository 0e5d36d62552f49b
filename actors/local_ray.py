"""Ownership records for the local Ray heads tape starts, and reaping of heads whose driver died.

A local head started by ``ray.init`` fate-shares its raylet and GCS with the driver, but the raylet's
agents (``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``) and idle workers can outlive a SIGKILLed
driver, reparented to init. So each driver that starts a local head writes a small record (its pid and
start time, the session dir, the head's process ids) into a tape-owned runtime directory; the next
tape start that needs Ray kills the processes of every recorded head whose driver is gone. A process
is only killed when it still belongs to that session: owned by this user, a Ray process, and its
command line or an open file points into the session dir (so a reused pid is never hit). The
engine's detached head is started by ``ray start``, never recorded here, and so never reaped.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

RUNTIME_DIR_ENV = "TAPE_RUNTIME_DIR"


def runtime_dir() -> Path:
    """Where tape keeps its head records: ``$TAPE_RUNTIME_DIR`` or a per-user temp folder."""
    configured = os.environ.get(RUNTIME_DIR_ENV)
    base = Path(configured) if configured else Path(tempfile.gettempdir()) / f"tape-{os.getuid()}"
    return base / "ray-heads"


def _start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) may hold spaces, so split after its closing parenthesis.
    return int(stat.rsplit(")", 1)[1].split()[19])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _open_paths(pid: int) -> Iterable[str]:
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return
    for fd in fds:
        with contextlib.suppress(OSError):
            yield os.readlink(f"{fd_dir}/{fd}")


def _owned_by_me(pid: int) -> bool:
    try:
        return os.stat(f"/proc/{pid}").st_uid == os.getuid()
    except OSError:
        return False


def belongs_to_session(pid: int, session_dir: str) -> bool:
    """Whether ``pid`` is a Ray process of this user that belongs to the head at ``session_dir``."""
    if pid == os.getpid() or not _owned_by_me(pid):
        return False
    cmdline = _cmdline(pid)
    if "ray" not in cmdline:
        return False
    return session_dir in cmdline or any(p.startswith(session_dir + "/") for p in _open_paths(pid))


def session_members(session_dir: str) -> list[int]:
    """Every live process of this user that belongs to the Ray head at ``session_dir``."""
    pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    return sorted(pid for pid in pids if belongs_to_session(pid, session_dir))


def record_head(session_dir: str) -> Path:
    """Record that this process owns the local head at ``session_dir``; the record goes at exit."""
    folder = runtime_dir()
    folder.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    record = {
        "driver_pid": pid,
        "driver_start": _start_time(pid),
        "session_dir": session_dir,
        "pids": session_members(session_dir),
    }
    path = folder / f"{pid}-{Path(session_dir).name}.json"
    tmp = path.with_suffix(f".{pid}.tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)
    atexit.register(_forget, path)
    return path


def _forget(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _driver_alive(record: dict) -> bool:
    start = _start_time(int(record["driver_pid"]))
    return start is not None and start == record.get("driver_start")


def reap_dead_heads(wait_s: float = 5.0) -> list[int]:
    """Kill the processes of every recorded local head whose driver has died; return their pids.
    Heads whose driver is alive (this process's own, another running tape) are left alone."""
    folder = runtime_dir()
    if not folder.is_dir():
        return []
    killed: list[int] = []
    for path in sorted(folder.glob("*.json")):
        try:
            record = json.loads(path.read_text())
            session_dir = str(record["session_dir"])
        except (OSError, ValueError, KeyError, TypeError):
            _forget(path)  # a torn or foreign record names nothing we can verify
            continue
        if _driver_alive(record):
            continue
        victims = set(session_members(session_dir))
        victims |= {p for p in record.get("pids", []) if belongs_to_session(int(p), session_dir)}
        for pid in sorted(victims):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        _wait_gone(session_dir, wait_s)
        _forget(path)
    return killed


def _wait_gone(session_dir: str, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while session_members(session_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
