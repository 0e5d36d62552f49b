"""`tape backtest`, `tape replay` (fold and --rerun) and `tape explain` through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tape.store.bar_files import import_bars_file
from tape.store.log import EventLog
from tests.conftest import TapeRunner, assert_clean_failure

WINDOW = ["--start", "2004-01-01", "--end", "2006-12-31"]


def _backtest(tape: TapeRunner, *args: str) -> dict:
    result = tape("backtest", "AAPL", *WINDOW, "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_backtest_json_has_the_metrics_and_trades(tape: TapeRunner) -> None:
    out = _backtest(tape)
    for key in (
        "run_id",
        "total_trades",
        "total_pnl",
        "return_pct",
        "win_rate",
        "num_wins",
        "num_losses",
        "avg_win",
        "avg_loss",
        "max_drawdown_pct",
        "sharpe",
        "sortino",
        "profit_factor",
        "max_consecutive_wins",
        "max_consecutive_losses",
        "recovery_factor",
        "buy_hold_return_pct",
    ):
        assert key in out
    assert out["total_trades"] == len(out["trades"]) > 0
    assert out["adjusted"] is True
    trade = out["trades"][0]
    assert set(trade) >= {"symbol", "entry_time", "entry_price", "exit_time", "exit_price", "qty", "pnl"}
    assert {t["exit_reason"] for t in out["trades"]} <= {"signal", "stop_loss", "take_profit", "end"}
    assert round(sum(t["pnl"] for t in out["trades"]), 2) == out["total_pnl"]


def test_backtest_writes_results_trades_and_chart(tape: TapeRunner, tmp_path: Path) -> None:
    out = _backtest(tape)
    results = list((tmp_path / "results").glob("backtest_AAPL_*.json"))
    assert len(results) == 1 and json.loads(results[0].read_text())["run_id"] == out["run_id"]
    trades = list((tmp_path / "results").glob("trades_AAPL_*.csv"))
    assert len(pd.read_csv(trades[0])) == out["total_trades"]
    chart = tmp_path / "charts" / f"equity_curve_AAPL_{out['run_id']}.png"
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_two_strategies_on_the_same_symbol_and_day_keep_their_own_files(
    tape: TapeRunner, tmp_path: Path
) -> None:
    first = _backtest(tape)
    second = _backtest(tape, "--strategy", "macd")
    assert first["run_id"] != second["run_id"]
    for run in (first, second):
        assert (tmp_path / "charts" / f"equity_curve_AAPL_{run['run_id']}.png").exists()
        (results,) = (tmp_path / "results").glob(f"backtest_AAPL_*_{run['run_id']}.json")
        assert json.loads(results.read_text())["run_id"] == run["run_id"]
        assert len(list((tmp_path / "results").glob(f"trades_AAPL_*_{run['run_id']}.csv"))) == 1


def test_replay_prints_the_same_summary_to_the_last_digit(tape: TapeRunner) -> None:
    out = _backtest(tape)
    replay = tape("replay", out["run_id"], "--json")
    assert replay.returncode == 0, replay.stderr
    assert json.loads(replay.stdout) == out


def test_an_identical_run_is_not_logged_twice(tape: TapeRunner, log_path: Path) -> None:
    first = _backtest(tape)
    with EventLog.open(log_path) as log:
        count = log.count()
    second = _backtest(tape)
    assert second == first
    with EventLog.open(log_path) as log:
        assert log.count() == count


def test_rerun_reproduces_every_decision(tape: TapeRunner) -> None:
    out = _backtest(tape)
    rerun = tape("replay", out["run_id"], "--rerun")
    assert rerun.returncode == 0, rerun.stderr
    assert "identical" in rerun.stdout


def test_rerun_fails_when_the_data_it_reads_differs(tape: TapeRunner, tmp_path: Path) -> None:
    out = _backtest(tape, "--no-adjust")
    # Same symbol, same dates, one close nudged: the cache now shadows the bundled sample.
    sample = pd.read_csv(Path("store/sample/stocks_daily.csv.gz").resolve())
    aapl = sample[sample.symbol == "AAPL"].drop(columns=["symbol", "adj_close"]).reset_index(drop=True)
    row = aapl.index[aapl.date == "2005-06-01"][0]
    aapl.loc[row, ["close", "high"]] = aapl.loc[row, ["close", "high"]] * 1.2
    edited = tmp_path / "aapl.csv"
    aapl.to_csv(edited, index=False)
    import_bars_file(edited, "AAPL", data_path=tmp_path / "tape-data.db")
    rerun = tape("replay", out["run_id"], "--rerun")
    assert rerun.returncode == 1
    assert "DIFFERS" in rerun.stdout
    assert "AAPL: the data differs" in rerun.stderr


def test_explain_shows_the_story_of_one_trade(tape: TapeRunner) -> None:
    out = _backtest(tape)
    result = tape("explain", out["run_id"], "--trade", "1", "--json")
    assert result.returncode == 0, result.stderr
    kinds = [json.loads(line)["kind"] for line in result.stdout.splitlines()]
    assert kinds[0] == "signal" and kinds[-1] == "position_closed"
    for kind in ("order_intent", "risk_accepted", "order_submitted", "fill", "position_opened"):
        assert kind in kinds
    risk = next(json.loads(line) for line in result.stdout.splitlines() if '"risk_accepted"' in line)
    assert {"equity", "risk_amount", "per_share_risk"} <= set(risk["checks"])


def test_portfolio_backtest_of_several_symbols(tape: TapeRunner) -> None:
    result = tape("backtest", "AAPL", "MSFT", "IBM", *WINDOW, "--json", "--max-positions", "2")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["symbols"] == ["AAPL", "MSFT", "IBM"]
    assert {t["symbol"] for t in out["trades"]} <= {"AAPL", "MSFT", "IBM"}


def test_no_adjust_reads_raw_prices_with_the_split(tape: TapeRunner) -> None:
    year = ["--start", "2005-01-01", "--end", "2005-12-31", "--json"]
    raw = json.loads(tape("backtest", "AAPL", *year, "--no-adjust").stdout)
    adjusted = json.loads(tape("backtest", "AAPL", *year).stdout)
    assert (raw["adjusted"], adjusted["adjusted"]) == (False, True)
    # AAPL more than doubled in 2005; raw prices halve at the 2:1 split of February and hide it.
    assert adjusted["buy_hold_return_pct"] > 100 > raw["buy_hold_return_pct"] + 80


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["ZZZZ"], "unknown symbol 'ZZZZ'"),
        (["AAPL", "--start", "2020-01-01"], "no bars between"),
        (["AAPL", "--start", "2005-13-01"], "--start expects a date"),
        (["AAPL", "--cash", "-5"], "starting cash must be positive"),
        (["AAPL", "--param", "short=20", "--param", "long=5"], "short (20) must be less than long (5)"),
        (["AAPL", "--strategy", "nope"], "unknown strategy 'nope'"),
        (["AAPL", "--param", "wibble=3"], "unknown parameter 'wibble'"),
        (["AAPL", "--param", "short"], "--param expects NAME=VALUE"),
        (["AAPL", "--stop-loss", "150"], "stop loss"),
        (["AAPL", "--cash", "lots"], "--cash"),
    ],
)
def test_bad_input_fails_cleanly_and_writes_nothing(
    tape: TapeRunner, log_path: Path, args: list[str], needle: str
) -> None:
    result = tape("backtest", *args)
    assert_clean_failure(result, needle)
    assert not log_path.exists()


def test_replay_of_an_unknown_run_fails_cleanly(tape: TapeRunner) -> None:
    _backtest(tape)
    assert_clean_failure(tape("replay", "ffffffffffff"), "no run 'ffffffffffff'")


def test_explain_of_a_trade_that_does_not_exist(tape: TapeRunner) -> None:
    out = _backtest(tape)
    assert_clean_failure(tape("explain", out["run_id"], "--trade", "9999"), "closed trades")


def test_long_runs_stream_to_the_writer_process(tmp_path: Path) -> None:
    from tape.events.backtest import BacktestConfig
    from tape.store.backtests import backtest
    from tape.store.bench_backtest import synthetic_minute_bars
    from tape.store.run_writer import PIPELINE_MIN_BARS

    series = synthetic_minute_bars(PIPELINE_MIN_BARS + 10)
    config = BacktestConfig(symbols=["SYN"], timeframe="1Min", cash=1e7)
    outcome = backtest(config, log_path=tmp_path / "t.db", data_path=None, loader=lambda c: [series])
    with EventLog.open(tmp_path / "t.db") as log:
        assert log.verify().ok
        assert log.count() == outcome.append.count > 0
    assert np.isfinite(outcome.report.metrics["return_pct"])
