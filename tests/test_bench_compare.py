"""`tape bench ... --compare`: the raw limit does the same work as the tape run it is compared with,
and a whole process is measured as one (its time, its memory, its output)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tape.events.errors import TapeError
from tape.store.bench_compare import NO_COSTS_NO_STOPS, numpy_grid_pass, numpy_sma_pass, write_bars_csv
from tape.store.bench_process import fastest_pair, run_process
from tape.store.market import cached_frame
from tests.conftest import TapeRunner


def test_the_bare_numpy_pass_trades_as_the_tape_run_it_is_compared_with(
    tape: TapeRunner, tmp_path: Path
) -> None:
    write_bars_csv(tmp_path / "bars.csv", 5_000)
    imported = tape(
        "--data", str(tmp_path / "bars.db"), "data", "import", str(tmp_path / "bars.csv"), "-s", "SYN"
    )
    assert imported.returncode == 0, imported.stderr
    ran = tape(
        *("--data", str(tmp_path / "bars.db"), "backtest", "SYN", "-s", "sma_cross", *NO_COSTS_NO_STOPS),
        *("-p", "short=5", "-p", "long=20", "--json", "--no-files"),
    )
    assert ran.returncode == 0, ran.stderr
    summary = json.loads(ran.stdout)
    frame = cached_frame(tmp_path / "bars.db", "SYN", "1Min")
    assert frame is not None
    trades, pnl = numpy_sma_pass(frame.open, frame.close)
    assert trades == summary["total_trades"] > 10
    assert abs(pnl - summary["total_pnl"]) <= 0.005 * trades  # tape rounds each trade to the cent


def test_the_grid_pass_counts_every_pairs_crossings() -> None:
    close = [[1.0], [2.0], [3.0], [1.0], [0.5], [2.0], [4.0]]
    # short 1 against long 2: above, above, below, below, above, above -> 2 crossings
    assert numpy_grid_pass(np.array(close), [1], [2]) == 2


def test_a_whole_process_run_reports_its_seconds_memory_and_output(tmp_path: Path) -> None:
    grow = [
        sys.executable,
        "-c",
        "b = bytearray(64 * 2**20); b[::4096] = b'x' * len(b[::4096]); print('done')",
    ]
    small = [sys.executable, "-c", "print('small')"]
    big, little = fastest_pair(grow, small, cwd=tmp_path, repeat=2)
    assert little is not None
    assert big.stdout == "done\n" and little.stdout == "small\n"
    assert big.peak_mb >= 64 > little.peak_mb
    assert big.seconds > 0 and little.seconds > 0


def test_a_failing_command_is_one_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(TapeError, match=r"bench command failed.*no such thing"):
        run_process([sys.executable, "-c", "raise SystemExit('no such thing')"], cwd=tmp_path)
