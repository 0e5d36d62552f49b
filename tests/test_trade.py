"""`tape trade --broker sim --feed replay` on Ray actors decides exactly what `tape backtest` decides."""

from __future__ import annotations

import json

from tests.conftest import TapeRunner, assert_clean_failure

SYMBOLS = ["AAPL", "MSFT", "GOOG"]
PERIOD = ["--start", "2011-06-01", "--end", "2013-03-01"]


def _json(tape: TapeRunner, *args: str) -> dict:
    result = tape(*args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_replayed_session_on_actors_equals_the_backtest(tape: TapeRunner) -> None:
    session = _json(
        tape,
        "trade",
        *SYMBOLS,
        "--strategy",
        "sma_cross",
        "--broker",
        "sim",
        "--feed",
        "replay",
        "--speed",
        "0",
        *PERIOD,
        "--json",
    )
    backtest = _json(tape, "backtest", *SYMBOLS, "--strategy", "sma_cross", *PERIOD, "--json", "--no-files")
    compared = _json(tape, "compare", session["run_id"], backtest["run_id"], "--json")
    assert compared["decisions_a"] == compared["decisions_b"] > 100
    assert compared["identical"] and compared["differences"] == []
    assert {k: v for k, v in session.items() if k != "run_id"} == {
        k: v for k, v in backtest.items() if k != "run_id"
    }
    # Slippage changes prices, not decisions: compare says so.
    costlier = _json(
        tape,
        "backtest",
        *SYMBOLS,
        "--strategy",
        "sma_cross",
        *PERIOD,
        "--json",
        "--no-files",
        "--slippage-bps",
        "20",
    )
    diff = _json(tape, "compare", backtest["run_id"], costlier["run_id"], "--json")
    assert diff["differences"] and {d["cause"] for d in diff["differences"]} <= {
        "price",
        "different",
        "only_a",
        "only_b",
    }
    assert any(d["cause"] == "price" and d["a"]["kind"] == "fill" for d in diff["differences"])


def test_an_unknown_broker_fails_cleanly(tape: TapeRunner) -> None:
    assert_clean_failure(tape("trade", "AAPL", "--broker", "paper"), "--broker must be sim or alpaca")


def test_compare_of_an_unknown_run_fails_cleanly(tape: TapeRunner) -> None:
    tape("log", "note", "a log must exist")
    assert_clean_failure(tape("compare", "aaaaaaaaaaaa", "bbbbbbbbbbbb"), "no run 'aaaaaaaaaaaa'")
