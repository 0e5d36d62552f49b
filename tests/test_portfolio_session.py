"""A portfolio strategy's replayed session on Ray actors (symbol actors feeding the portfolio actor)
decides exactly what its backtest decides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tape.actors.engine import ReplayOutcome
from tape.actors.portfolio_session import run_portfolio_session
from tape.arguments import build_config
from tape.store.backtests import backtest, load_config_bars, replay_report
from tape.store.compare import compare_runs
from tape.store.log import EventLog
from tape.what_if import whatif
from tests.conftest import TapeRunner, assert_clean_failure

SYMBOLS = ["AAPL", "CVX", "JPM", "KO", "MSFT", "XOM"]


@pytest.fixture(scope="module")
def momentum_session(
    ray_session: None, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Any, ReplayOutcome, Path]:
    """A momentum session replayed on actors into a log of its own: (config, outcome, log path)."""
    config = build_config(
        SYMBOLS, "momentum", ["lookback=42", "skip=5", "top=2", "rebalance=weekly"], "2019-01-01",
        "2019-06-30", 100_000.0, dataset="sp500_20",
    )  # fmt: skip
    log_path = tmp_path_factory.mktemp("momentum") / "tape.db"
    return config, run_portfolio_session(config, load_config_bars(config, None), log_path=log_path), log_path


def test_momentum_session_on_actors_equals_its_backtest_decision_for_decision(
    momentum_session: tuple[Any, ReplayOutcome, Path],
) -> None:
    config, session, log_path = momentum_session
    ran = backtest(config, log_path=log_path, data_path=None)
    with EventLog.open(log_path, readonly=True) as log:
        compared = compare_runs(log, session.run_id, ran.report.run_id)
        replayed = replay_report(log, session.run_id)
    assert compared.differences == []
    assert compared.decisions_a == compared.decisions_b > 50
    assert replayed.mode == "sim" and replayed.metrics["final_equity"] == ran.report.metrics["final_equity"]


def test_a_momentum_session_is_rerun_from_the_bars_its_log_recorded(
    momentum_session: tuple[Any, ReplayOutcome, Path], tmp_path: Path
) -> None:
    _, session, log_path = momentum_session
    nowhere = tmp_path / "no-such-store.db"  # the market-data store is not consulted
    same = whatif(session.run_id, log=log_path, data_path=nowhere)
    assert same.diff.divergence is None and same.derived.trades == same.original.trades
    assert same.link.inputs == "log"
    other = whatif(session.run_id, params=["top=3"], log=log_path, data_path=nowhere)
    assert other.diff.divergence is not None


def test_a_portfolio_strategy_is_refused_live_with_one_clear_message(tape: TapeRunner) -> None:
    result = tape("trade", "AAPL", "MSFT", "--strategy", "momentum", "--broker", "alpaca", "--feed", "alpaca")
    assert_clean_failure(result, "--broker sim --feed replay")


def test_a_portfolio_strategy_is_refused_by_spawn_with_one_clear_message(tape: TapeRunner) -> None:
    assert_clean_failure(tape("spawn", "AAPL", "momentum"), "--broker sim --feed replay")
