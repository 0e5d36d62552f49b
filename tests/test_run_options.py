"""The run options (costs, risk, sizing, filters, bar size): defined once, taken alike by every command
that runs a strategy and by the Python API, and giving a job the results of the same backtest."""

from __future__ import annotations

import inspect
import json
from typing import Any

import pytest
import typer.main

import tape
from tape.cli.app import app
from tape.run_options import RUN_OPTIONS, RunOptions, chosen_options
from tests.conftest import TapeRunner, assert_clean_failure

BACKTEST_LIKE = ("backtest", "optimize", "walkforward", "validate")
SESSIONS = ("trade", "spawn")


def _command_options(name: str) -> dict[str, Any]:
    """A command's options by keyword: their default (from the click command typer builds)."""
    group = typer.main.get_command(app)
    command = group.commands[name]  # type: ignore[attr-defined]
    return {p.name: p for p in command.params}


def _api_keywords(fn: Any) -> dict[str, Any]:
    return {p.name: p.default for p in inspect.signature(fn).parameters.values()}


@pytest.mark.parametrize("command", BACKTEST_LIKE + SESSIONS)
def test_every_command_that_runs_a_strategy_takes_every_run_option_with_its_default(command: str) -> None:
    params = _command_options(command)
    for option in chosen_options(live=command in SESSIONS):
        assert option.name in params, f"tape {command} lacks {option.flag}"
        assert params[option.name].opts == [option.flag]
        assert params[option.name].default == option.default, option.flag


@pytest.mark.parametrize("fn", [tape.backtest, tape.optimize, tape.walkforward, tape.validate])
def test_the_api_takes_the_run_options_with_the_commands_names_and_defaults(fn: Any) -> None:
    keywords = _api_keywords(fn)
    command = {name: p.default for name, p in _command_options("backtest").items()}
    for option in chosen_options(live=False):
        assert keywords[option.name] == option.default == command[option.name], option.name


def test_option_defaults_are_the_config_defaults() -> None:
    from tape.events.costs import CostModel
    from tape.events.risk import RiskConfig

    given = RunOptions()
    assert given.cost() == CostModel() and given.risk() == RiskConfig()
    assert RunOptions(live=True).cost() == CostModel()


def test_the_options_keep_the_names_users_type() -> None:
    flags = {o.flag for o in RUN_OPTIONS}
    assert {"--stop-loss", "--qty", "--timeframe", "--slippage-bps", "--correlation-action"} <= flags
    assert {"--rebalance", "--drift", "--max-weight", "--cash-buffer", "--min-trade"} <= flags
    assert len(flags) == len(RUN_OPTIONS) == 30


def test_an_unknown_api_keyword_is_refused_by_python() -> None:
    with pytest.raises(TypeError, match="stop_los"):
        tape.backtest("AAPL", stop_los=0)  # type: ignore[call-arg]


def test_an_infinite_option_is_refused_on_the_command_line(tape: TapeRunner) -> None:
    assert_clean_failure(tape("optimize", "AAPL", "--stop-loss", "inf"), "must be a finite number")


def test_a_bad_risk_option_fails_cleanly_in_a_job(tape: TapeRunner) -> None:
    assert_clean_failure(
        tape("walkforward", "AAPL", "--sizing", "kelly", "--grid", "short=10"),
        "--sizing must be percent or atr",
    )


PERIOD = ("--start", "2009-01-01", "--end", "2012-12-31")
RULES = ("--stop-loss", "0", "--qty", "10", "--timeframe", "1Day", "--commission", "1")
COMPARED = ("return_pct", "total_trades", "total_pnl", "sharpe", "max_drawdown_pct", "total_commission")


def _json(result: Any) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _backtest(tape: TapeRunner, *args: str) -> dict[str, Any]:
    summary = _json(
        tape("backtest", "AAPL", "-p", "short=10", "-p", "long=50", "--no-files", "--json", *args)
    )
    return {k: summary[k] for k in COMPARED}


def test_optimize_under_backtest_rules_gives_that_backtests_results(tape: TapeRunner) -> None:
    ruled = _backtest(tape, *PERIOD, *RULES)
    assert ruled != _backtest(tape, *PERIOD)  # the rules change the run: the comparison can fail
    grid = ("--grid", "short=10", "--grid", "long=50")
    best = _json(tape("optimize", "AAPL", *grid, *PERIOD, *RULES, "--json"))["best"]
    assert {k: best[k] for k in COMPARED} == ruled


def test_validate_under_backtest_rules_gives_that_backtests_results(tape: TapeRunner) -> None:
    ruled = _backtest(tape, *PERIOD, *RULES)
    args = ("-p", "short=10", "-p", "long=50", "--periods", "1")
    (verdict,) = _json(tape("validate", "AAPL", *args, *PERIOD, *RULES, "--json"))["symbols"]
    assert {k: verdict["full"][k] for k in COMPARED} == ruled


def test_walkforward_under_backtest_rules_tests_each_fold_as_that_backtest(tape: TapeRunner) -> None:
    grid = ("--grid", "short=10", "--grid", "long=50", "--folds", "2")
    job = _json(tape("walkforward", "AAPL", *grid, *PERIOD, *RULES, "--json"))
    for fold in job["folds"]:
        first, last = fold["test"]
        ruled = _backtest(tape, "--start", first, "--end", last, *RULES)
        assert {k: fold["test_metrics"][k] for k in COMPARED} == ruled


def test_a_whole_number_records_as_the_command_lines_float() -> None:
    risk = RunOptions({"stop_loss": 0, "qty": 10, "max_positions": 2.0}).risk()
    assert (risk.stop_loss_pct, risk.fixed_qty, risk.max_positions) == (0.0, 10.0, 2)
    assert isinstance(risk.fixed_qty, float) and isinstance(risk.max_positions, int)


def test_an_option_not_given_stays_out_of_the_recorded_config() -> None:
    import msgspec

    options = RunOptions(live=True)
    assert b"qty_increment" not in msgspec.json.encode(options.risk())
    assert b"fee_bps" not in msgspec.json.encode(options.cost())
    assert b"fee_bps" in msgspec.json.encode(RunOptions({"fee_bps": 0}).cost())
