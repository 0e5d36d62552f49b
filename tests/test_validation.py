"""Optimisation and walk-forward as Ray jobs: planning, no peeking at test data, cluster == one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tape.actors.validation import optimize, walk_forward
from tape.events.backtest import BacktestConfig
from tape.events.bars import BarSeries
from tape.events.errors import ConfigError
from tape.events.sweep import expand_grid, parse_grid_args, sample_grid, walk_forward_folds
from tape.store.log import EventLog
from tape.store.market import load_many
from tests.conftest import REPO, TapeRunner, assert_clean_failure

GRID = [{"short": s, "long": lg} for s in (5, 10) for lg in (20, 40)]
BASE = BacktestConfig(symbols=["AAPL", "MSFT"], start="2003-01-01", end="2010-12-31")


def _series() -> list[BarSeries]:
    return load_many(BASE.symbols, start=BASE.start, end=BASE.end)


def test_a_grid_expands_to_every_combination_in_a_stable_order() -> None:
    grid = parse_grid_args(["short=5,10", "long=20,30,50"])
    combos = expand_grid(grid)
    assert len(combos) == 6 and combos[0] == {"long": "20", "short": "5"}


def test_random_sampling_is_seeded() -> None:
    grid = {"a": list(range(10)), "b": list(range(10))}
    assert sample_grid(grid, 7, seed=1) == sample_grid(grid, 7, seed=1) != sample_grid(grid, 7, seed=2)


def test_rolling_folds_never_overlap_their_test_windows() -> None:
    folds = walk_forward_folds(1000, folds=4, train=0.6, anchored=False, min_bars=21)
    assert [(f.train_lo, f.train_hi, f.test_hi) for f in folds] == [
        (0, 150, 250),
        (250, 400, 500),
        (500, 650, 750),
        (750, 900, 1000),
    ]


def test_anchored_folds_train_from_the_start() -> None:
    folds = walk_forward_folds(1000, folds=2, train=0.5, anchored=True, min_bars=21)
    assert [f.train_lo for f in folds] == [0, 0]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"train": 1.0}, "strictly between 0 and 1"),
        ({"train": 0.0}, "strictly between 0 and 1"),
        ({"folds": 40}, "needs 21 to warm up"),
    ],
)
def test_impossible_folds_are_refused(kwargs: dict, needle: str) -> None:
    plan = {"folds": 4, "train": 0.6, "anchored": False, "min_bars": 21, **kwargs}
    with pytest.raises(ConfigError, match=needle):
        walk_forward_folds(500, **plan)


def test_optimize_ranks_and_logs_one_summary_per_backtest(ray_session: None, tmp_path: Path) -> None:
    result = optimize(BASE, _series(), GRID, objective="sharpe", log_path=tmp_path / "t.db")
    assert len(result.ranked) == 4 and result.appended == 4
    scores = [r.score for r in result.ranked]
    assert scores == sorted(scores, reverse=True)
    with EventLog.open(tmp_path / "t.db") as log:
        kinds = {r.kind for r in log.read(stream=f"job/{result.job_id}")}
    assert kinds == {"backtest_summary"}
    again = optimize(BASE, _series(), GRID, objective="sharpe", log_path=tmp_path / "t.db")
    assert again.appended == 0 and again.ranked == result.ranked


def test_optimisation_never_reads_the_test_period(ray_session: None, tmp_path: Path) -> None:
    series = _series()
    baseline = walk_forward(
        BASE, series, GRID, objective="sharpe", folds=2, train=0.6, anchored=False, log_path=tmp_path / "a.db"
    )
    # Plant a wild change inside the first fold's test window only: its chosen parameters must not move.
    fold = baseline.folds[0]
    planted = []
    for s in series:
        close = s.close.copy()
        inside = (s.ts >= fold.test_start_ts) & (s.ts <= fold.test_end_ts)
        close[inside] = close[inside] * np.linspace(1.0, 3.0, int(inside.sum()))
        high, low = np.maximum(s.high, close), np.minimum(s.low, close)
        opn = np.clip(s.open, low, high)
        planted.append(BarSeries.from_arrays(s.symbol, s.timeframe, s.ts, opn, high, low, close, s.volume))
    changed = walk_forward(
        BASE,
        planted,
        GRID,
        objective="sharpe",
        folds=2,
        train=0.6,
        anchored=False,
        log_path=tmp_path / "b.db",
    )
    assert changed.folds[0].params == fold.params
    assert changed.folds[0].train == fold.train
    assert changed.folds[0].test != fold.test  # the planted change is real and seen out of sample


def test_a_two_node_cluster_walk_forward_equals_one_process(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_AUTH_MODE": "disabled"}
    run = subprocess.run(
        [sys.executable, str(REPO / "tests" / "cluster_walkforward.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    clustered = json.loads(run.stdout.strip().splitlines()[-1])
    assert clustered["nodes"] == 2
    local = walk_forward(
        BASE,
        _series(),
        GRID,
        objective="sharpe",
        folds=3,
        train=0.6,
        anchored=False,
        log_path=tmp_path / "t.db",
        in_process=True,
    )
    assert clustered["folds"] == [{"params": f.params, "train": f.train, "test": f.test} for f in local.folds]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["optimize", "AAPL", "--grid", "short="], "has no values"),
        (["optimize", "AAPL"], "the grid is empty"),
        (["optimize", "AAPL", "--grid", "short=30", "--grid", "long=20"], "no valid parameter set"),
        (["optimize", "AAPL", "--grid", "short=5", "--objective", "luck"], "unknown objective 'luck'"),
        (["walkforward", "AAPL", "--grid", "short=5", "--train", "1.5"], "strictly between 0 and 1"),
        (["walkforward", "AAPL", "--grid", "short=5", "--start", "2012-06-01", "--folds", "8"], "to warm up"),
        (["montecarlo", "ffffffffffff"], "no run 'ffffffffffff'"),
    ],
)
def test_bad_validation_input_fails_cleanly(tape: TapeRunner, args: list[str], needle: str) -> None:
    if args[0] == "montecarlo":
        tape("log", "note", "a log must exist")
    assert_clean_failure(tape(*args), needle)


def test_bench_sweep_reports_throughput_and_scaling(tape: TapeRunner) -> None:
    result = tape("bench", "sweep", "--pairs", "4", "--symbols", "2", "--years", "1", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["backtests"] == 4 and figures["workers"] >= 1
    assert figures["backtests_per_s"] > 0 and figures["scaling_efficiency"] > 0


def test_validate_says_which_symbols_to_trade(ray_session: None, tmp_path: Path) -> None:
    from tape.actors.validation import MIN_CONSISTENCY, validate_symbols

    base = BacktestConfig(symbols=["AAPL", "IBM", "MSFT"], strategy="macd")  # all from 2000
    series = load_many(base.symbols)
    result = validate_symbols(base, series, periods=3, log_path=tmp_path / "t.db")
    assert {v.symbol for v in result.symbols} == set(base.symbols)
    assert result.appended == 3 * (1 + 3)  # the whole range and 3 periods per symbol
    for verdict in result.symbols:
        assert len(verdict.periods) == 3
        wins = sum(1 for m in verdict.periods if m["return_pct"] > 0)
        assert verdict.profitable_periods == wins
        assert verdict.recommended == (wins / 3 >= MIN_CONSISTENCY and verdict.full["sharpe"] > 0)
    ranks = [(not v.recommended, -v.consistency) for v in result.symbols]
    assert ranks == sorted(ranks)


def test_validate_covers_the_twenty_stock_universe(tape: TapeRunner) -> None:
    result = tape("validate", "--universe", "sp500_20", "--start", "2012-01-01", "--periods", "2", "--json")
    assert result.returncode == 0, result.stderr
    verdicts = json.loads(result.stdout)["symbols"]
    assert len(verdicts) == 20 and all(len(v["periods"]) == 2 for v in verdicts)


def test_validate_needs_symbols_or_a_known_universe(tape: TapeRunner) -> None:
    assert_clean_failure(tape("validate"), "name the symbols to validate")
    assert_clean_failure(tape("validate", "--universe", "sp500"), "unknown universe 'sp500'")


def test_any_job_result_reruns_in_full_to_the_same_metrics(ray_session: None, tmp_path: Path) -> None:
    from tape.store.backtests import rerun_summary

    log = tmp_path / "t.db"
    series = _series()
    result = walk_forward(
        BASE, series, GRID, objective="sharpe", folds=2, train=0.6, anchored=False, log_path=log
    )
    with EventLog.open(log) as opened:
        ids = [r.event_id for r in opened.read(stream=f"job/{result.job_id}")]
    test_summary = ids[len(GRID)]  # fold 1's out-of-sample backtest
    rerun = rerun_summary(log, test_summary, data_path=None)
    assert rerun.mismatched == {} and rerun.data_changed == []
    with EventLog.open(log) as opened:
        assert any(r.kind == "run_started" for r in opened.read(stream=f"run/{rerun.run_id}"))


def test_rerun_of_an_unknown_summary_fails_cleanly(tape: TapeRunner) -> None:
    tape("log", "note", "a log must exist")
    assert_clean_failure(tape("replay", "abcd:000001", "--rerun"), "no backtest summary 'abcd:000001'")
