"""The TradeLogger projection: per-day trade CSVs and daily summaries, rebuilt from the log alone.

``logs/trades_{symbol}_{date}.csv`` holds the round trips (or closing parts) that closed on that
(exchange) day; ``logs/daily_summary_{date}.json`` the day's equity, P&L and trades closed, in total and
per run. Several runs share the files of one directory (the engine's sessions, one run per symbol and
strategy, all write under the directory `tape up` ran in; so do `tape trade` runs started there): each
run owns its rows (the ``run_id`` column) and its entry under ``runs``, and writing a run replaces only
what it owns, under a lock, so no session's rows are lost to another's. Both are folds of the log, so
deleting them loses nothing: `tape report RUN --rebuild` writes each run's part again, byte for byte.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tape.events.costs import cents
from tape.events.report import RunReport, market_time, trade_rows
from tape.store import atomic
from tape.store.backtest_files import TRADE_COLUMNS

# A backtest's trade CSV columns, then whose trade it is (files here are shared by runs).
LOG_COLUMNS = [*TRADE_COLUMNS, "strategy", "run_id"]


def _day(ts: int) -> str:
    return market_time(ts, "1Day")


def _write(path: Path, text: str) -> None:
    atomic.write_text(path, text)  # readers see the old file or the new one, never half of one


@contextlib.contextmanager
def _locked(logs: Path) -> Iterator[None]:
    """Hold the directory's lock: sessions in other processes merge into the same files."""
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / ".trade_logs.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_trade_logs(report: RunReport, root: Path, *, since: int | None = None) -> list[Path]:
    """Write ``report``'s part of the per-day trade CSVs and daily summaries under ``root/logs``,
    keeping what other runs wrote there; with ``since`` (a timestamp), only the files of its exchange
    day and later (a live cycle: earlier days are already written). Returns the files written."""
    first_day = _day(since) if since is not None else ""
    logs = root / "logs"
    rows_by_file: dict[str, list[dict[str, Any]]] = defaultdict(list)
    pnl_by_day: dict[str, int] = defaultdict(int)
    trades_by_day: dict[str, int] = defaultdict(int)
    for trade, row in zip(report.trades, trade_rows(report), strict=True):
        day = _day(trade.exit_ts)
        if day < first_day:
            continue  # written already, and so is its day's summary
        name = f"trades_{trade.symbol.replace('/', '')}_{day}.csv"
        rows_by_file[name].append({**row, "strategy": report.strategy, "run_id": report.run_id})
        pnl_by_day[day] += cents(trade.pnl)
        trades_by_day[day] += 1
    summaries = _day_summaries(report, pnl_by_day, trades_by_day)
    written: list[Path] = []
    with _locked(logs):
        for name, rows in sorted(rows_by_file.items()):
            written.append(_merge_trades(logs / name, report.run_id, rows))
        for day, summary in summaries.items():
            if day >= first_day:
                written.append(
                    _merge_summary(logs / f"daily_summary_{day}.json", day, report.run_id, summary)
                )
    return written


def _day_summaries(
    report: RunReport, pnl_by_day: dict[str, int], trades_by_day: dict[str, int]
) -> dict[str, dict[str, Any]]:
    """The run's figures of each day it marked its equity."""
    out: dict[str, dict[str, Any]] = {}
    previous = float(report.config.get("cash", 0.0))
    for mark in report.marks:
        day = _day(mark.ts)
        out[day] = {
            "strategy": report.strategy,
            "symbols": list(report.symbols),
            "equity": round(mark.equity, 2),
            "day_pnl": round(mark.equity - previous, 2),
            "realized_pnl": pnl_by_day.get(day, 0) / 100.0,
            "trades_closed": trades_by_day.get(day, 0),
            "max_drawdown_pct": round(mark.drawdown_pct, 4),
            "bars": mark.bars,
            "bars_in_market": mark.bars_in_market,
        }
        previous = mark.equity
    return out


def _merge_trades(path: Path, run_id: str, rows: list[dict[str, Any]]) -> Path:
    """The file's rows of other runs, and ``rows`` in place of the run's own, in exit order."""
    kept: list[dict[str, Any]] = []
    if path.exists():
        with path.open(newline="") as handle:
            kept = [r for r in csv.DictReader(handle) if r.get("run_id") != run_id]
    merged = sorted([*kept, *rows], key=lambda r: (r["exit_time"], r["run_id"], int(r["n"])))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LOG_COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(merged)
    _write(path, buffer.getvalue())
    return path


def _merge_summary(path: Path, day: str, run_id: str, figures: dict[str, Any]) -> Path:
    """The day's summary with the run's figures in place of its old ones, and the totals over runs
    (summed in cents, so they reconcile with the runs' figures exactly)."""
    runs: dict[str, dict[str, Any]] = {}
    if path.exists():
        with contextlib.suppress(ValueError, AttributeError):  # not ours, or damaged: rebuilt below
            runs = dict(json.loads(path.read_text()).get("runs", {}))
    runs[run_id] = figures
    runs = dict(sorted(runs.items()))

    def total(field: str) -> float:
        return sum(cents(r[field]) for r in runs.values()) / 100.0

    summary = {
        "date": day,
        "equity": total("equity"),
        "day_pnl": total("day_pnl"),
        "realized_pnl": total("realized_pnl"),
        "trades_closed": sum(int(r["trades_closed"]) for r in runs.values()),
        "runs": runs,
    }
    _write(path, json.dumps(summary, indent=2) + "\n")
    return path
