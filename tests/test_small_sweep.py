"""A small sweep runs in-process without starting Ray, and every row equals `tape backtest` of its
parameters, metric for metric, to the last digit."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tape.actors.jobs import RAY_START_SECONDS, is_small_sweep, may_run_here
from tests.conftest import TapeRunner

GRID = ["--grid", "short=5,10,15", "--grid", "long=20,50"]


def test_a_small_optimize_does_not_start_ray(tmp_path) -> None:  # type: ignore[no-untyped-def]
    grid = {"short": [5, 10], "long": [20, 50]}
    code = f"import sys, tape\ntape.optimize('AAPL', grid={grid!r}, log='t.db')\nprint('ray' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert done.stdout.strip().splitlines()[-1] == "False"


def test_a_sweep_stays_here_only_while_its_timed_work_is_under_ray_start_up() -> None:
    # Two CPUs: here wins while the work is under start-up plus half the work, i.e. twice start-up.
    assert is_small_sweep(2 * RAY_START_SECONDS / 100, 100, cpus=2)
    assert not is_small_sweep(2 * RAY_START_SECONDS / 100, 101, cpus=2)
    assert is_small_sweep(1.0, 10**6, cpus=1)  # one CPU: Ray cannot win


def test_a_cluster_or_chosen_workers_always_get_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "ray", raising=False)  # as in a fresh `tape optimize`: no Ray yet
    assert may_run_here(address=None, workers=None)
    assert not may_run_here(address="auto", workers=None)
    assert not may_run_here(address=None, workers=2)


def test_every_sampled_sweep_row_equals_a_backtest_of_its_parameters(tape: TapeRunner) -> None:
    swept = tape("optimize", "AAPL", *GRID, "--json")
    assert swept.returncode == 0, swept.stderr
    rows = json.loads(swept.stdout)["results"]
    assert len(rows) == 6
    for row in (rows[0], rows[len(rows) // 2], rows[-1]):
        params = [arg for name, value in row["params"].items() for arg in ("-p", f"{name}={value}")]
        ran = tape("backtest", "AAPL", "-s", "sma_cross", *params, "--json", "--no-files")
        assert ran.returncode == 0, ran.stderr
        summary = json.loads(ran.stdout)
        shared = [k for k in row if k not in ("params", "score") and k in summary]
        assert len(shared) > 10
        assert {k: float(row[k]) for k in shared} == {k: float(summary[k]) for k in shared}


def test_a_shared_cash_portfolio_sweep_row_equals_a_backtest_of_its_parameters(tape: TapeRunner) -> None:
    universe = [
        "--dataset",
        "sp500_20",
        "AAPL",
        "MSFT",
        "XOM",
        "--start",
        "2015-01-01",
        "--end",
        "2016-12-31",
    ]
    swept = tape("optimize", *universe, "--grid", "short=5,10", "--grid", "long=20,40", "--json")
    assert swept.returncode == 0, swept.stderr
    rows = json.loads(swept.stdout)["results"]
    assert len(rows) == 4
    row = rows[-1]  # the lowest-ranked: no row is special
    params = [arg for name, value in row["params"].items() for arg in ("-p", f"{name}={value}")]
    ran = tape("backtest", *universe, "-s", "sma_cross", *params, "--json", "--no-files")
    assert ran.returncode == 0, ran.stderr
    summary = json.loads(ran.stdout)
    shared = [k for k in row if k not in ("params", "score") and k in summary]
    assert len(shared) > 10 and summary["total_trades"] > 0
    assert {k: float(row[k]) for k in shared} == {k: float(summary[k]) for k in shared}
