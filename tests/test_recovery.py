"""A killed or interrupted session resumes from its log and ends as an uninterrupted one would.

The chaos tests kill the whole process group of a running `tape` (driver and the local Ray it
started) with SIGKILL at seeded random points, restart the same command each time, and hold the
result to an uninterrupted run's: trades, P&L, every decision event, a log that verifies, and no
process of the killed attempts left running.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import apsw
import pytest

from tests.conftest import TapeRunner

SESSION = [
    "trade", "AAPL", "MSFT", "--strategy", "sma_cross", "--broker", "sim", "--feed", "replay",
    "--start", "2011-06-01", "--end", "2013-03-01",
]  # fmt: skip
BACKTEST = ["backtest", "AAPL", "MSFT", "--strategy", "sma_cross", "--no-files"]
NOT_DECISIONS = ("actor_started", "actor_stopped")


def _env(log: Path, tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "TAPE_LOG": str(log), "TAPE_DATA": str(tmp_path / "tape-data.db")}
    env.pop("TAPE_DEBUG", None)
    return env


def _start(args: list[str], log: Path, tmp_path: Path) -> subprocess.Popen[str]:
    """`tape ARGS` in a session of its own, so the whole group (and the Ray it starts) can be killed."""
    return subprocess.Popen(
        [sys.executable, "-m", "tape.cli.app", *args],
        cwd=tmp_path,
        env=_env(log, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _count(log: Path, sql: str) -> int:
    """A read-only look at the log while a writer works on it (0 before the file exists)."""
    if not log.exists():
        return 0
    try:
        conn = apsw.Connection(str(log), flags=apsw.SQLITE_OPEN_READONLY)
        try:
            conn.setbusytimeout(5000)
            return conn.execute(sql).fetchone()[0]
        finally:
            conn.close()
    except apsw.Error:
        return 0  # the schema is not there yet


def _session_processes(sid: int) -> list[str]:
    """Processes still alive in the session (setsid) a killed attempt ran in."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) == sid:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            alive.append(f"{entry.name} {command}")
    return alive


def _kill_when(proc: subprocess.Popen[str], ready: Callable[[], bool], limit: float = 240) -> None:
    """SIGKILL the process group once ``ready()`` holds, then wait until nothing of it runs."""
    deadline = time.monotonic() + limit
    while not ready():
        assert proc.poll() is None, f"the run ended before the kill point: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "the kill point was never reached"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    deadline = time.monotonic() + 60
    while left := _session_processes(proc.pid):
        assert time.monotonic() < deadline, f"processes of a killed run still running: {left}"
        time.sleep(0.5)


def _finish(args: list[str], log: Path, tmp_path: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "tape.cli.app", *args, "--json"],
        cwd=tmp_path,
        env=_env(log, tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    report.pop("run_id")
    return report


def _decisions(log: Path) -> list[tuple[str, str, int, bytes]]:
    """Every event but the actors' start and stop notes, as stored (stream, kind, ts, body)."""
    conn = apsw.Connection(str(log), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        marks = ",".join("?" * len(NOT_DECISIONS))
        return list(
            conn.execute(
                f"SELECT stream, kind, ts, body FROM events WHERE kind NOT IN ({marks}) ORDER BY seq",
                NOT_DECISIONS,
            )
        )
    finally:
        conn.close()


def _verifies(tape: TapeRunner, log: Path) -> None:
    result = tape("--log", str(log), "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "chain intact" in result.stdout


DECIDED = "SELECT count(*) FROM events WHERE kind NOT IN ('actor_started','actor_stopped')"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, list, int]:
    """The session run once without interruption: (its report, its decision events, how many)."""
    where = tmp_path_factory.mktemp("uninterrupted")
    whole = where / "whole.db"
    report = _finish(SESSION, whole, where)
    return report, _decisions(whole), _count(whole, DECIDED)


@pytest.mark.faults
def test_a_session_killed_at_five_random_points_resumes_to_the_uninterrupted_result(
    tape: TapeRunner, tmp_path: Path, uninterrupted: tuple[dict, list, int]
) -> None:
    report, decisions, decided = uninterrupted
    broken = tmp_path / "broken.db"
    for point in sorted(random.Random(22).sample(range(2, decided - 2), 5)):
        _kill_when(_start(SESSION, broken, tmp_path), lambda p=point: _count(broken, DECIDED) >= p)
        assert "incomplete" in tape("--log", str(broken), "runs").stdout
    assert _finish(SESSION, broken, tmp_path) == report  # every trade, the P&L and the metrics
    assert _decisions(broken) == decisions
    _verifies(tape, broken)
    again = tape("--log", str(broken), *SESSION)
    assert again.returncode == 0 and "already in the log, complete" in again.stderr


def test_ctrl_c_stops_a_session_with_a_stop_event_and_a_resume_line_and_the_resume_finishes_it(
    tape: TapeRunner, tmp_path: Path, uninterrupted: tuple[dict, list, int]
) -> None:
    report, decisions, decided = uninterrupted
    log = tmp_path / "stopped.db"
    proc = _start(SESSION, log, tmp_path)
    deadline = time.monotonic() + 240
    while _count(log, DECIDED) < decided // 3:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert re.fullmatch(
        r"stopped at bar \d+ of 880 \(\d{4}-\d\d-\d\d\) of session [0-9a-f]{16}; "
        r"resume with: tape trade AAPL MSFT --strategy sma_cross --broker sim --feed replay "
        r"--start 2011-06-01 --end 2013-03-01",
        err.strip(),
    ), err
    assert _count(log, "SELECT count(*) FROM events WHERE kind = 'actor_stopped'") == 1
    assert "stopped" in tape("--log", str(log), "runs").stdout
    assert _finish(SESSION, log, tmp_path) == report
    assert _decisions(log) == decisions
    _verifies(tape, log)


def _run_rows(log: Path) -> int:
    return _count(log, "SELECT count(*) FROM events WHERE stream >= 'run/' AND stream < 'run0'")


@pytest.mark.faults
def test_a_backtest_killed_at_five_random_points_leaves_nothing_partial_and_finishes_identically(
    tape: TapeRunner, tmp_path: Path
) -> None:
    whole, broken = tmp_path / "whole.db", tmp_path / "broken.db"
    started = time.monotonic()
    uninterrupted = _finish(BACKTEST, whole, tmp_path)
    took = time.monotonic() - started
    complete = _run_rows(whole)
    rng = random.Random(7)
    for _ in range(5):
        proc = _start(BACKTEST, broken, tmp_path)
        time.sleep(rng.uniform(0.2, took))
        if proc.poll() is None:
            _kill_when(proc, lambda: True)
        else:
            proc.communicate()  # it finished before this kill point
        assert _run_rows(broken) in (0, complete)  # the run is in the log whole or not at all
        if broken.exists():
            _verifies(tape, broken)
    assert _finish(BACKTEST, broken, tmp_path) == uninterrupted
    assert _run_rows(broken) == complete
    _verifies(tape, broken)
