"""Portfolio strategies under every audit: optimize ranks a grid whose rows re-run exactly as
backtests, `replay --rerun` matches, and `explain --rebalance` shows why each symbol moved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tape as tape_api
from tests.conftest import TapeRunner, assert_clean_failure

RANGE = {"start": "2008-01-01", "end": "2011-12-31"}


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> tape_api.JobResult:
    log = tmp_path_factory.mktemp("jobs") / "tape.db"
    return tape_api.optimize(
        "sp500_20", "momentum", grid={"top": [3, 5], "lookback": [126, 252]}, log=log, **RANGE
    )


def test_optimize_over_top_and_lookback_ranks_the_grid_by_the_objective(job: tape_api.JobResult) -> None:
    table = job.table
    assert len(table) == 4
    assert sorted(zip(table["top"], table["lookback"], strict=True)) == [
        (3, 126),
        (3, 252),
        (5, 126),
        (5, 252),
    ]
    assert list(table["score"]) == sorted(table["score"], reverse=True)


def test_each_optimize_row_re_runs_exactly_as_a_backtest(job: tape_api.JobResult, tmp_path: Path) -> None:
    for row in job.summary["results"]:
        again = tape_api.backtest(
            universe="sp500_20", strategy="momentum", params=row["params"], log=tmp_path / "t.db", **RANGE
        )
        for key in ("sharpe", "final_equity", "total_trades", "max_drawdown_pct"):
            assert again.summary[key] == row[key], (row["params"], key)


def test_replay_rerun_of_a_momentum_backtest_is_identical(tmp_path: Path) -> None:
    result = tape_api.backtest(universe="sp500_20", strategy="momentum", log=tmp_path / "t.db", **RANGE)
    found = tape_api.replay(result, rerun=True)
    assert found["identical"] and found["compared"] > 100


def test_explain_rebalance_shows_each_symbols_score_weights_and_order(tape: TapeRunner) -> None:
    ran = tape(
        "backtest",
        "--universe",
        "sp500_20",
        "--strategy",
        "momentum",
        "--start",
        "2008-01-01",
        "--end",
        "2010-12-31",
        "--no-files",
        "--json",
    )
    run_id = json.loads(ran.stdout)["run_id"]
    shown = tape("explain", run_id, "--rebalance", "3", "--json")
    decision = json.loads(shown.stdout)
    assert decision["n"] == 3 and decision["trigger"] == "monthly"
    actions = {line["symbol"]: line["action"] for line in decision["lines"]}
    assert set(actions.values()) <= {"buy", "add", "trim", "sell", "keep"} and "sell" in actions.values()
    assert all("rank" in line["values"] for line in decision["lines"])
    assert_clean_failure(tape("explain", run_id, "--rebalance", "999"), "--rebalance 999 does not exist")


def test_walkforward_takes_a_universe_and_names_its_chart_by_it(tape: TapeRunner) -> None:
    ran = tape(
        "walkforward", "--universe", "sp500_20", "--strategy", "momentum", "--grid", "top=2,3",
        "--param", "lookback=42", "--param", "skip=5", "--start", "2018-01-01", "--end", "2020-12-31",
        "--folds", "2", "--json",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    summary = json.loads(ran.stdout)
    assert len(summary["folds"]) == 2
    assert Path(summary["chart"]).name.startswith("walkforward_sp500_20-20-symbols_momentum_")
    assert_clean_failure(tape("walkforward", "AAPL", "--universe", "sample"), "not both")
