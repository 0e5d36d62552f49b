"""`tape whatif` on a backtest: a derived run, linked to its origin, that equals a fresh backtest of the
same change; with no change it reproduces the origin's decisions exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tape.events.schema import RunDerived, RunStarted
from tape.events.whatif import without_bookkeeping
from tape.store.log import EventLog
from tape.store.runs import run_events
from tests.conftest import TapeRunner, assert_clean_failure

WINDOW = ["--start", "2004-01-01", "--end", "2005-12-31"]


def _json(tape: TapeRunner, *args: str) -> dict:
    result = tape(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _events(log_path: Path, run_id: str) -> list:
    with EventLog.open(log_path, readonly=True) as log:
        return [r.event for r in run_events(log, run_id)]


@pytest.fixture
def origin(tape: TapeRunner) -> str:
    """A backtest of AAPL over two years, without a stop."""
    return _json(tape, "backtest", "AAPL", *WINDOW, "--no-files")["run_id"]


def test_whatif_stop_loss_equals_a_fresh_backtest_with_that_stop_trade_for_trade(
    tape: TapeRunner, origin: str
) -> None:
    derived = _json(tape, "whatif", origin, "--set", "stop_loss=3")
    fresh = _json(tape, "backtest", "AAPL", *WINDOW, "--stop-loss", "3", "--no-files")
    replayed = _json(tape, "replay", derived["run_id"])
    assert replayed["trades"] == fresh["trades"]
    assert replayed["total_pnl"] == fresh["total_pnl"]
    original = _json(tape, "replay", origin)
    assert derived["deltas"]["total_pnl"] == pytest.approx(fresh["total_pnl"] - original["total_pnl"])
    assert any(t["exit_reason"] == "stop_loss" for t in fresh["trades"])  # the stop did change something


def test_whatif_without_changes_reproduces_the_decisions_exactly(
    tape: TapeRunner, origin: str, log_path: Path
) -> None:
    derived = _json(tape, "whatif", origin)
    assert derived["first_divergence"] is None and derived["trade_changes"] == []
    original, rerun = _events(log_path, origin), _events(log_path, derived["run_id"])
    assert without_bookkeeping(rerun) == without_bookkeeping(original)
    assert len(without_bookkeeping(original)) > 10


def test_the_derived_run_is_logged_with_its_origin_and_changes(
    tape: TapeRunner, origin: str, log_path: Path
) -> None:
    derived = _json(tape, "whatif", origin, "--set", "stop_loss=3", "--set", "slippage_bps=10")
    events = _events(log_path, derived["run_id"])
    assert isinstance(events[0], RunStarted) and events[0].config["risk"]["stop_loss_pct"] == 3.0
    assert events[1] == RunDerived(
        ts=events[0].ts,
        run_id=derived["run_id"],
        derived_from=origin,
        changes={"stop_loss": 3.0, "slippage_bps": 10.0},
        inputs="data",
    )
    again = _json(tape, "whatif", origin, "--set", "stop_loss=3", "--set", "slippage_bps=10")
    assert again["run_id"] == derived["run_id"] and again["duplicate"] is True


def test_whatif_names_the_first_diverging_decision_with_both_reasons(tape: TapeRunner, origin: str) -> None:
    derived = _json(tape, "whatif", origin, "--param", "short=10")
    divergence = derived["first_divergence"]
    assert divergence is not None
    assert divergence["original_reason"] != divergence["derived_reason"]
    assert derived["changes"] == {"param.short": "10"}
    text = tape("whatif", origin, "--param", "short=10")
    assert text.returncode == 0, text.stderr
    assert "first divergence" in text.stdout and "original:" in text.stdout


def test_another_strategy_is_a_whatif_too(tape: TapeRunner, origin: str) -> None:
    derived = _json(tape, "whatif", origin, "--strategy", "macd")
    assert derived["changes"] == {"strategy": "macd"}
    assert derived["first_divergence"] is not None


def test_an_unknown_set_key_lists_the_valid_keys(tape: TapeRunner, origin: str) -> None:
    result = tape("whatif", origin, "--set", "stop=3")
    assert result.returncode == 2
    assert_clean_failure(result, "unknown key 'stop'", "stop_loss", "slippage_bps")


def test_a_bad_set_value_fails_cleanly(tape: TapeRunner, origin: str) -> None:
    result = tape("whatif", origin, "--set", "stop_loss=three")
    assert result.returncode == 2
    assert_clean_failure(result, "stop_loss", "three")


def test_whatif_of_an_unknown_run_fails_cleanly(tape: TapeRunner, origin: str) -> None:
    assert_clean_failure(tape("whatif", "nosuchrun"), "no run 'nosuchrun'")


def test_the_api_returns_the_same_whatif(tape: TapeRunner, origin: str, log_path: Path) -> None:
    import tape as api

    outcome = api.whatif(origin, set={"stop_loss": 3}, log=log_path)
    assert outcome.link.derived_from == origin and outcome.link.changes == {"stop_loss": 3.0}
    assert outcome.derived.run_id == _json(tape, "whatif", origin, "--set", "stop_loss=3")["run_id"]


def test_compare_labels_every_difference_with_the_whatif_change(tape: TapeRunner, origin: str) -> None:
    derived = _json(tape, "whatif", origin, "--set", "stop_loss=3")
    out = _json(tape, "compare", origin, derived["run_id"])
    assert out["change"] == "stop_loss=3.0 (b is a what-if of a)"
    assert out["differences"] and all(d["change"] == out["change"] for d in out["differences"])
    text = tape("compare", derived["run_id"], origin)
    assert "stop_loss=3.0 (a is a what-if of b)" in text.stdout


def test_compare_of_unrelated_runs_names_no_change(tape: TapeRunner, origin: str) -> None:
    other = _json(tape, "backtest", "AAPL", *WINDOW, "--stop-loss", "3", "--no-files")
    out = _json(tape, "compare", origin, other["run_id"])
    assert out["change"] == "" and all(d["change"] == "" for d in out["differences"])
