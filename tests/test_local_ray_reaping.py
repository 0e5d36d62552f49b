"""A local Ray started by `tape` leaves nothing running once its driver is gone.

Each test points `TAPE_RUNTIME_DIR` at its own folder, so the reaper only ever sees heads this test
started (never the suite's `ray_session`, nor other Ray instances on the machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tape.actors.local_ray import RUNTIME_DIR_ENV, reap_dead_heads, record_head, session_members

SLOW_SESSION = ["trade", "AAPL", "--broker", "sim", "--feed", "replay", "--speed", "1"]
SHORT_SESSION = [
    "trade", "AAPL", "--broker", "sim", "--feed", "replay", "--start", "2013-01-01", "--end", "2013-02-01",
]  # fmt: skip


def _env(tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "TAPE_LOG": str(tmp_path / "tape.db"),
        "TAPE_DATA": str(tmp_path / "tape-data.db"),
        RUNTIME_DIR_ENV: str(tmp_path / "runtime"),
    }
    env.pop("TAPE_DEBUG", None)
    env.pop("RAY_ADDRESS", None)
    return env


def _start(args: list[str], tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tape.cli.app", *args],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _head_record(tmp_path: Path, driver: subprocess.Popen[str], limit: float = 180) -> dict:
    """The ownership record the driver writes once its local Ray is up."""
    deadline = time.monotonic() + limit
    while True:
        for path in (tmp_path / "runtime" / "ray-heads").glob(f"{driver.pid}-*.json"):
            with contextlib.suppress(ValueError):
                return json.loads(path.read_text())
        assert driver.poll() is None, f"the session ended before Ray was up: {driver.stderr.read()}"
        assert time.monotonic() < deadline, "the driver never recorded its Ray head"
        time.sleep(0.1)


def _left_after(session_dir: str, limit: float) -> list[int]:
    """Processes of the head at ``session_dir`` still alive after waiting up to ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while (left := session_members(session_dir)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def test_the_next_tape_start_reaps_the_ray_of_a_driver_killed_with_sigkill(tmp_path: Path) -> None:
    driver = _start(SLOW_SESSION, tmp_path)
    try:
        record = _head_record(tmp_path, driver)
        assert record["pids"], "the recorded head names its processes"
        os.kill(driver.pid, signal.SIGKILL)  # the driver only: its Ray is left to fend for itself
        driver.communicate()
        after = subprocess.run(
            [sys.executable, "-m", "tape.cli.app", *SHORT_SESSION],
            cwd=tmp_path,
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert after.returncode == 0, after.stderr
        assert session_members(record["session_dir"]) == []
        assert not list((tmp_path / "runtime" / "ray-heads").glob(f"{driver.pid}-*.json"))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)


def _session_dir_of(driver_pid: int) -> str:
    """Ray names a local head's session dir after the driver's pid (``session_<date>_<pid>``)."""
    ray_tmp = Path(os.environ.get("RAY_TMPDIR", tempfile.gettempdir())) / "ray"
    (found,) = ray_tmp.glob(f"session_*_{driver_pid}")
    return str(found)


def test_a_session_that_exits_normally_leaves_no_ray_process_running(tmp_path: Path) -> None:
    driver = _start(SHORT_SESSION, tmp_path)
    try:
        _, err = driver.communicate(timeout=300)
        assert driver.returncode == 0, err
        assert _left_after(_session_dir_of(driver.pid), limit=30) == []
        assert not list((tmp_path / "runtime" / "ray-heads").glob("*.json"))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)


def test_the_reaper_kills_nothing_outside_the_recorded_ray_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        heads = tmp_path / "runtime" / "ray-heads"
        heads.mkdir(parents=True)
        record = {
            "driver_pid": bystander.pid + 10_000_000,  # beyond pid_max: no such driver
            "driver_start": 0,
            "session_dir": str(tmp_path / "ray" / "session_gone"),
            "pids": [bystander.pid, os.getpid()],
        }
        (heads / "1-session_gone.json").write_text(json.dumps(record))
        monkeypatch.setenv(RUNTIME_DIR_ENV, str(tmp_path / "runtime"))
        assert reap_dead_heads(wait_s=0) == []
        assert bystander.poll() is None
        assert not list(heads.glob("*.json"))  # the dead head's record is done with
    finally:
        bystander.kill()
        bystander.wait()


def test_the_reaper_leaves_the_head_of_a_live_driver_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RUNTIME_DIR_ENV, str(tmp_path / "runtime"))
    session_dir = tmp_path / "ray" / "session_live"
    (session_dir / "logs").mkdir(parents=True)
    # A stand-in for a head process: a "ray" process of this user holding a file in the session dir.
    member = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; f = open(sys.argv[1], 'w'); time.sleep(300)", "ray"],
        cwd=session_dir / "logs",
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while member.pid not in session_members(str(session_dir)):
            assert time.monotonic() < deadline, "the stand-in never opened its file"
            time.sleep(0.05)
        record = record_head(str(session_dir))  # owned by this (live) process
        assert reap_dead_heads(wait_s=0) == []
        assert member.poll() is None and record.exists()
    finally:
        member.kill()
        member.wait()
