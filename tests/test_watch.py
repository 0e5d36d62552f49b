"""`tape watch` and `tape status`: the dashboard, read off a real pseudo-terminal, agrees with the JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pexpect
import pyte
import pytest

from tests.conftest import REPO, TapeRunner, assert_clean_failure

ROWS, COLS = 70, 150
# One calendar year of daily bars replayed in ~8 s: long enough to watch it move, short for a test.
SPEED = str(365 * 86_400 // 8)


class Terminal:
    """`tape watch` in a pseudo-terminal, its output fed through a VT100 emulator (what a person sees)."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.screen = pyte.Screen(COLS, ROWS)
        self._stream = pyte.ByteStream(self.screen)
        self.child = pexpect.spawn(
            sys.executable,
            ["-m", "tape.cli.app", "watch", "--interval", "0.3"],
            cwd=str(cwd),
            env=env,
            dimensions=(ROWS, COLS),
        )

    def pump(self) -> None:
        while True:
            try:
                chunk = self.child.read_nonblocking(65536, timeout=0.2)
            except (pexpect.TIMEOUT, pexpect.EOF):
                return
            self._stream.feed(chunk)

    def wait_for(self, found: Callable[[str], bool], timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            self.pump()
            text = "\n".join(self.screen.display)
            if found(text):
                return text
        raise AssertionError(f"screen never showed what was expected:\n{text}")

    def close(self) -> None:
        self.child.terminate(force=True)


def _rows(screen: str) -> dict[str, list[str]]:
    """Table rows of the positions table: first cell -> the other cells."""
    out = {}
    for line in screen.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 8 and cells[0] and cells[0] != "symbol":
            out[cells[0]] = cells[1:]
    return out


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    full = {**os.environ, "TAPE_LOG": str(tmp_path / "tape.db"), "TAPE_DATA": str(tmp_path / "d.db")}
    full["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    full.update(TERM="xterm-256color", COLUMNS=str(COLS), LINES=str(ROWS))
    full.pop("TAPE_DEBUG", None)
    return full


def test_watch_shows_the_positions_and_pnl_that_status_reports_beside_a_running_session(
    tmp_path: Path, env: dict[str, str], tape: TapeRunner
) -> None:
    trade = subprocess.Popen(
        [
            *(sys.executable, "-m", "tape.cli.app", "trade", "AAPL", "MSFT"),
            *("--broker", "sim", "--feed", "replay", "--speed", SPEED),
            *("--start", "2010-01-01", "--end", "2010-12-31"),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not (tmp_path / "tape.db").exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # the session creates the log once Ray is up
    terminal = Terminal(env, tmp_path)
    try:
        running = terminal.wait_for(lambda s: "state running" in s and "AAPL" in s and "MSFT" in s)
        assert trade.poll() is None, "the session ended before the dashboard saw it running"
        assert "Positions and P&L" in running and "Recent decisions" in running
        _, err = trade.communicate(timeout=120)
        assert trade.returncode == 0, err.decode()
        final = terminal.wait_for(lambda s: "state completed" in s)
    finally:
        terminal.close()
    status = json.loads(tape("status", "--json").stdout)
    assert status["state"] == "completed"
    shown = _rows(final)
    assert set(shown) == {*status["positions"], "TOTAL"}
    for symbol, row in status["positions"].items():
        qty, _, _, unrealised, realised, total, trades = shown[symbol]
        assert float(qty) == row["qty"]
        assert realised == f"{row['realized_pnl']:+,.2f}"
        assert unrealised == f"{row['unrealized_pnl']:+,.2f}"
        assert total == f"{row['total_pnl']:+,.2f}"
        assert int(trades) == row["trades"]
    assert shown["TOTAL"][5] == f"{status['total_pnl']:+,.2f}"
    assert f"run {status['run_id']}" in final


def test_status_totals_are_the_sum_of_the_symbols_to_the_cent(tape: TapeRunner) -> None:
    result = tape("trade", "AAPL", "MSFT", "GOOG", "--broker", "sim", "--feed", "replay", "--speed", "0")
    assert result.returncode == 0, result.stderr
    status = json.loads(tape("status", "--json").stdout)
    rows = status["positions"].values()
    assert status["positions"] and sum(r["trades"] for r in rows) > 0
    assert round(sum(round(r["total_pnl"] * 100) for r in rows)) == round(status["total_pnl"] * 100)
    assert round(sum(round(r["realized_pnl"] * 100) for r in rows)) == round(status["realized_pnl"] * 100)


def test_status_without_a_trading_session_says_how_to_start_one(tape: TapeRunner) -> None:
    assert tape("log", "note", "nothing traded yet").returncode == 0
    assert_clean_failure(tape("status"), "no trading session", "tape trade")


def test_plain_watch_of_a_finished_run_prints_its_screen_and_exits_when_piped(tape: TapeRunner) -> None:
    done = tape(
        "trade", "AAPL", "--broker", "sim", "--feed", "replay", "--speed", "0", "--start", "2012-01-01"
    )
    assert done.returncode == 0, done.stderr
    watched = tape("watch", timeout=60)
    assert watched.returncode == 0, watched.stderr
    assert "Positions and P&L" in watched.stdout
    assert watched.stdout.rstrip().endswith("has ended (completed)")
