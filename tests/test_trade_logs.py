"""The TradeLogger projection: rebuilt from the log alone, byte for byte, and reconciling to the cent."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tests.conftest import TapeRunner


def _files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "logs").iterdir())}


def test_report_rebuild_writes_daily_logs_that_reconcile(tape: TapeRunner, tmp_path: Path) -> None:
    period = ["--start", "2005-01-01", "--end", "2006-12-31"]
    run = json.loads(tape("backtest", "AAPL", *period, "--json").stdout)
    assert tape("report", run["run_id"], "--rebuild").returncode == 0
    first = _files(tmp_path)
    trades = [name for name in first if name.startswith("trades_AAPL_")]
    summaries = [name for name in first if name.startswith("daily_summary_")]
    assert trades and len(summaries) > 400
    rows = [row for name in trades for row in csv.DictReader((tmp_path / "logs" / name).open())]
    assert len(rows) == run["total_trades"]
    assert round(sum(float(r["pnl"]) for r in rows), 2) == run["total_pnl"]
    days = [json.loads(first[name]) for name in summaries]
    assert round(sum(d["realized_pnl"] for d in days), 2) == run["total_pnl"]
    assert days[-1]["equity"] == run["final_equity"]
    # Delete and rebuild: the same bytes come back.
    for path in (tmp_path / "logs").iterdir():
        path.unlink()
    assert tape("report", run["run_id"], "--rebuild").returncode == 0
    assert _files(tmp_path) == first


def test_runs_sharing_a_directory_keep_each_others_rows_and_the_day_totals_add_them_up(
    tape: TapeRunner, tmp_path: Path
) -> None:
    """Two strategies on AAPL (as two engine sessions would) write the same per-day files: each run
    replaces only its own rows and its own entry of the day's summary."""
    period = ["--start", "2005-01-01", "--end", "2006-12-31"]
    sma = json.loads(tape("backtest", "AAPL", *period, "--json").stdout)
    rsi = json.loads(tape("backtest", "AAPL", "--strategy", "rsi", *period, "--json").stdout)
    for run in (sma, rsi, sma):  # the second write of a run replaces its part, duplicating nothing
        assert tape("report", run["run_id"], "--rebuild").returncode == 0
    files = _files(tmp_path)
    rows = [
        row
        for name in files
        if name.startswith("trades_AAPL_")
        for row in csv.DictReader((tmp_path / "logs" / name).open())
    ]
    for run in (sma, rsi):
        mine = [r for r in rows if r["run_id"] == run["run_id"]]
        assert len(mine) == run["total_trades"] > 0
        assert {r["strategy"] for r in mine} == {run["strategy"]}
        assert round(sum(float(r["pnl"]) for r in mine), 2) == run["total_pnl"]
    days = [json.loads(files[name]) for name in files if name.startswith("daily_summary_")]
    assert all(set(d["runs"]) == {sma["run_id"], rsi["run_id"]} for d in days)
    for d in days:
        assert round(d["realized_pnl"] * 100) == sum(
            round(r["realized_pnl"] * 100) for r in d["runs"].values()
        )
        assert d["trades_closed"] == sum(r["trades_closed"] for r in d["runs"].values())
    assert round(sum(d["realized_pnl"] for d in days), 2) == round(sma["total_pnl"] + rsi["total_pnl"], 2)
    assert days[-1]["equity"] == round(sma["final_equity"] + rsi["final_equity"], 2)
    # Deleted, and rebuilt run by run: the same bytes come back.
    for path in (tmp_path / "logs").iterdir():
        path.unlink()
    for run in (rsi, sma):
        assert tape("report", run["run_id"], "--rebuild").returncode == 0
    assert _files(tmp_path) == files


def test_a_write_since_a_day_leaves_the_earlier_days_files_alone(tape: TapeRunner, tmp_path: Path) -> None:
    """A live cycle writes only the days it changed: its day and later."""
    from tape.store.backtests import replay_report
    from tape.store.log import EventLog
    from tape.store.trade_logs import write_trade_logs

    run = json.loads(
        tape("backtest", "AAPL", "--start", "2005-01-01", "--end", "2005-12-31", "--json").stdout
    )
    with EventLog.open(tmp_path / "tape.db", readonly=True) as log:
        report = replay_report(log, run["run_id"])
    write_trade_logs(report, tmp_path)
    first_day = sorted((tmp_path / "logs").glob("daily_summary_*.json"))[0]
    first_day.write_text("{}\n")  # a whole write would put the day's figures back

    written = write_trade_logs(report, tmp_path, since=report.marks[1].ts)
    assert first_day.read_text() == "{}\n"
    assert len([p for p in written if p.name.startswith("daily_summary_")]) == len(report.marks) - 1
    write_trade_logs(report, tmp_path)
    assert json.loads(first_day.read_text())["equity"] == round(report.marks[0].equity, 2)
