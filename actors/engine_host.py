"""Where the engine lives: its Ray head, the state file that lets another shell find it, and teardown.

`tape up` starts a Ray head of its own (``ray start --head --block`` in a new process session, on free
loopback ports, with a short temp dir so Ray's socket paths fit) unless told to join ``--address``, then
creates the named, detached Engine actor and writes ``.tape/<log name>.engine.json`` beside the log.
Every other command reads that file and connects. `tape down` stops the engine, then ends exactly the
processes of the head it started (they share its process session): other Ray instances on the machine
are never touched, which is why ``ray stop`` (it stops every Ray on the machine) is not used.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from tape.actors.engine_spec import EngineOptions
from tape.actors.live_engine import ENGINE_NAME, Engine
from tape.events.errors import TapeError
from tape.store import atomic

LOOPBACK = "127.0.0.1"
_HEAD_START_S = 90.0


class EngineNotRunning(TapeError):
    """No engine answers for this log."""

    exit_code = 1


class EngineState(msgspec.Struct, frozen=True, kw_only=True):
    """What another shell needs to reach the engine (no secrets)."""

    address: str
    namespace: str
    log: str
    head_pid: int = 0  # the `ray start` process of a head we started; 0 when we joined a cluster
    temp_dir: str = ""
    engine_pid: int = 0


def state_path(log_path: Path) -> Path:
    """``.tape/<log name>.engine.json`` beside the log: one engine per log file."""
    log = log_path.resolve()
    return log.parent / ".tape" / f"{log.name}.engine.json"


def namespace_for(log_path: Path) -> str:
    """A Ray namespace per log, so engines of different logs can share one cluster."""
    return "tape-" + hashlib.sha256(str(log_path.resolve()).encode()).hexdigest()[:10]


def read_state(log_path: Path) -> EngineState:
    """The state file of the engine of ``log_path``; EngineNotRunning when there is none."""
    path = state_path(log_path)
    if not path.is_file():
        raise EngineNotRunning(f"no engine is running for {log_path} (start one with `tape up`)")
    try:
        return msgspec.json.decode(path.read_bytes(), type=EngineState)
    except msgspec.DecodeError:
        raise EngineNotRunning(
            f"the engine state file {path} is damaged; remove it and run `tape up`"
        ) from None


def write_state(log_path: Path, state: EngineState) -> None:
    path = state_path(log_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(path, msgspec.json.encode(state))  # a reader never sees half a file


def forget_state(log_path: Path) -> None:
    state_path(log_path).unlink(missing_ok=True)


# ---------------------------------------------------------------------- the Ray head


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _listening(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return True
    except OSError:
        return False


def start_head(log_path: Path, env: dict[str, str]) -> EngineState:
    """Start a Ray head for this log's engine on free loopback ports; returns where it is."""
    port = _free_port()
    digest = hashlib.sha256(str(log_path.resolve()).encode()).hexdigest()[:10]
    temp_dir = Path(tempfile.gettempdir()) / f"tape-ray-{digest}"  # short: Ray's socket paths must fit
    temp_dir.mkdir(parents=True, exist_ok=True)
    command = _head_command(port, temp_dir)
    env = {
        **env,
        "RAY_AUTH_MODE": "disabled",  # a loopback-only head
        "RAY_USAGE_STATS_ENABLED": "0",
        # Without this Ray swaps 127.0.0.1 for the machine's network address ("remotely reachable"):
        # a single-node head has no use for it, and nothing here may listen beyond the loopback.
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    }
    with open(temp_dir / "head.log", "ab") as out:
        head = subprocess.Popen(
            command,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    address = f"{LOOPBACK}:{port}"
    _wait_for_head(head, address, temp_dir)
    return EngineState(
        address=address,
        namespace=namespace_for(log_path),
        log=str(log_path.resolve()),
        head_pid=head.pid,
        temp_dir=str(temp_dir),
    )


def _head_command(port: int, temp_dir: Path) -> list[str]:
    """``ray start --head`` on loopback, its every port chosen free, without dashboard or usage stats."""
    ports = {
        "--port": port,
        "--dashboard-port": _free_port(),
        "--dashboard-agent-listen-port": _free_port(),
        "--dashboard-agent-grpc-port": _free_port(),
        "--runtime-env-agent-port": _free_port(),
        "--metrics-export-port": _free_port(),
    }
    return [
        sys.executable,
        "-c",
        "from ray.scripts.scripts import main; main()",
        "start",
        "--head",
        "--block",
        f"--node-ip-address={LOOPBACK}",
        f"--temp-dir={temp_dir}",
        "--include-dashboard=false",
        "--disable-usage-stats",
        *(f"{flag}={value}" for flag, value in ports.items()),
    ]


def _wait_for_head(head: subprocess.Popen[bytes], address: str, temp_dir: Path) -> None:
    """Until the head listens at ``address``; a head that exits or stays silent is an error (and a
    silent one is stopped)."""
    deadline = time.monotonic() + _HEAD_START_S
    while not _listening(address):
        if head.poll() is not None:
            raise TapeError(
                f"the Ray head did not start (exit {head.returncode}); see {temp_dir / 'head.log'}"
            )
        if time.monotonic() > deadline:
            stop_head(head.pid)
            raise TapeError(
                f"the Ray head did not answer within {_HEAD_START_S:g} s; see {temp_dir / 'head.log'}"
            )
        time.sleep(0.1)  # polling the head's port: it has no readiness signal we can wait on


def _session_members(session_id: int) -> list[int]:
    """PIDs of the processes in process session ``session_id`` (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        if int(fields[3]) == session_id:  # state, ppid, pgrp, session
            pids.append(int(entry.name))
    return pids


def stop_head(head_pid: int, grace_s: float = 5.0) -> int:
    """End every process of the head started as ``head_pid`` (its process session); returns how many."""
    members = _session_members(head_pid)
    # The `ray start --block` supervisor answers SIGTERM by draining the node for up to 30 s; the engine
    # has already stopped its sessions, so it goes first and at once, then Ray's own processes.
    with contextlib.suppress(ProcessLookupError):
        os.kill(head_pid, signal.SIGKILL)
    for pid in members:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and _session_members(head_pid):
        time.sleep(0.1)  # polling /proc: the processes are not our children, nothing to wait() on
    for pid in _session_members(head_pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(members)


def head_alive(state: EngineState) -> bool:
    """Whether the cluster in ``state`` answers (for a head we started: its process is there too)."""
    if state.head_pid:
        try:
            os.kill(state.head_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
    return _listening(state.address)


# ---------------------------------------------------------------------- connecting


def connect(state: EngineState) -> Any:
    """Connect this process to the engine's cluster as a driver; returns the ray module."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # loopback-only cluster
    loopback = state.address.startswith(LOOPBACK)
    if loopback:  # read when ray is imported: keep 127.0.0.1 instead of the machine's network address
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray

    if not ray.is_initialized():
        ray.init(
            address=state.address,
            namespace=state.namespace,
            log_to_driver=False,
            logging_level="ERROR",
            **({"_node_ip_address": LOOPBACK} if loopback else {}),
        )
    return ray


def engine_handle(state: EngineState) -> Any:
    """The running Engine actor; EngineNotRunning when the cluster or the actor is gone."""
    if not head_alive(state):
        raise EngineNotRunning(f"no engine is running for {state.log}: its Ray head is gone (run `tape up`)")
    ray = connect(state)
    try:
        return ray.get_actor(ENGINE_NAME, namespace=state.namespace)
    except ValueError:
        raise EngineNotRunning(f"no engine is running for {state.log} (run `tape up`)") from None


def call(handle: Any, method: str, *args: Any, timeout: float | None = None) -> Any:
    """Call an Engine method; a TapeError raised inside comes back as itself (one line for the CLI)."""
    import ray
    from ray.exceptions import RayActorError, RayTaskError

    try:
        return ray.get(getattr(handle, method).remote(*args), timeout=timeout)
    except RayTaskError as exc:
        if isinstance(exc.cause, TapeError):
            raise exc.cause from None
        raise TapeError(f"the engine failed: {type(exc.cause).__name__}: {exc.cause}") from None
    except RayActorError:
        raise EngineNotRunning("the engine died while answering (Ray restarts it; try again)") from None


def disconnect() -> None:
    """Leave the cluster, if this process joined one (without importing ray just for that)."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


def create_engine(state: EngineState, options: EngineOptions) -> Any:
    """Create the named, detached Engine actor (restarted by Ray if its process dies)."""
    ray = connect(state)
    return (
        ray.remote(Engine)
        .options(
            name=ENGINE_NAME,
            namespace=state.namespace,
            lifetime="detached",
            max_restarts=-1,
            max_concurrency=16,  # threaded: status and spawn are served while sessions trade
            num_cpus=0,
        )
        .remote(options)
    )


def kill_engine(handle: Any) -> None:
    import ray

    ray.kill(handle, no_restart=True)


def remove_temp_dir(state: EngineState) -> None:
    if state.temp_dir and Path(state.temp_dir).name.startswith("tape-ray-"):
        shutil.rmtree(state.temp_dir, ignore_errors=True)
