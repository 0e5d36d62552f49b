"""`tape trade --broker sim --feed replay` on Ray actors decides exactly what `tape backtest` decides."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

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


def test_a_sim_session_writes_trade_logs_that_rebuild_byte_for_byte(tape: TapeRunner, tmp_path: Path) -> None:
    session = _json(
        tape, "trade", "AAPL", "--broker", "sim", "--feed", "replay", "--speed", "0", *PERIOD, "--json"
    )
    logs = tmp_path / "logs"
    written = {p.name: p.read_bytes() for p in sorted(logs.glob("*_20*"))}
    trade_files = [n for n in written if n.startswith("trades_AAPL_")]
    summaries = [n for n in written if n.startswith("daily_summary_")]
    assert len(trade_files) > 5 and len(summaries) > 300  # one summary per session day
    rows = [r for n in trade_files for r in csv.DictReader(io.StringIO(written[n].decode()))]
    assert len(rows) == session["total_trades"]
    assert {r["run_id"] for r in rows} == {session["run_id"]}
    for path in logs.glob("*_20*"):
        path.unlink()
    rebuilt = tape("report", session["run_id"], "--rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert {p.name: p.read_bytes() for p in sorted(logs.glob("*_20*"))} == written
