"""The TradeLogger projection: per-day trade CSVs and daily summaries, rebuilt from the log alone.

``logs/trades_{symbol}_{date}.csv`` holds the round trips that closed on that (exchange) day;
``logs/daily_summary_{date}.json`` the day's equity, P&L, trades and drawdown. Both are folds of a run's
events, so deleting them loses nothing: `tape report RUN --rebuild` writes them again, byte for byte.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import defaultdict
from pathlib import Path

from events.costs import cents
from events.report import RunReport, market_time, trade_rows
from store.backtest_files import TRADE_COLUMNS


def _day(ts: int) -> str:
    return market_time(ts, "1Day")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_trade_logs(report: RunReport, root: Path) -> list[Path]:
    """Write every per-day trades CSV and daily summary of ``report`` under ``root/logs``."""
    rows_by_file: dict[tuple[str, str], list[dict]] = defaultdict(list)
    pnl_by_day: dict[str, int] = defaultdict(int)
    trades_by_day: dict[str, int] = defaultdict(int)
    for trade, row in zip(report.trades, trade_rows(report), strict=True):
        day = _day(trade.exit_ts)
        rows_by_file[(trade.symbol.replace("/", ""), day)].append(row)
        pnl_by_day[day] += cents(trade.pnl)
        trades_by_day[day] += 1
    written: list[Path] = []
    for (symbol, day), rows in sorted(rows_by_file.items()):
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=TRADE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        path = root / "logs" / f"trades_{symbol}_{day}.csv"
        _write(path, buffer.getvalue())
        written.append(path)
    previous = float(report.config.get("cash", 0.0))
    for mark in report.marks:
        day = _day(mark.ts)
        summary = {
            "run_id": report.run_id,
            "date": day,
            "equity": round(mark.equity, 2),
            "day_pnl": round(mark.equity - previous, 2),
            "realized_pnl": pnl_by_day.get(day, 0) / 100.0,
            "trades_closed": trades_by_day.get(day, 0),
            "max_drawdown_pct": round(mark.drawdown_pct, 4),
            "bars": mark.bars,
            "bars_in_market": mark.bars_in_market,
        }
        previous = mark.equity
        path = root / "logs" / f"daily_summary_{day}.json"
        _write(path, json.dumps(summary, indent=2) + "\n")
        written.append(path)
    return written
