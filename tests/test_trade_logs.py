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
