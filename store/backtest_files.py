"""The files a backtest leaves for humans: the results JSON, the trades CSV and the equity chart.

All three are projections of the run's report (itself a fold of the log), so they can be rebuilt from
the log at any time.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tape.events.bars import BarSeries
from tape.events.report import RunReport, report_json, trade_rows
from tape.store import atomic

TRADE_COLUMNS = [
    "n",
    "symbol",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "qty",
    "gross_pnl",
    "commission",
    "pnl",
    "exit_reason",
]


class BacktestFiles(NamedTuple):
    """Where the files of one backtest were written."""

    results: Path
    trades: Path
    chart: Path


def _label(report: RunReport) -> str:
    return "-".join(s.replace("/", "") for s in report.symbols)


def write_backtest_files(
    report: RunReport, series: Sequence[BarSeries], *, root: Path, day: str
) -> BacktestFiles:
    """Write ``results/backtest_{symbols}_{day}.json``, ``results/trades_{symbols}_{day}.csv`` and
    ``charts/equity_curve_{symbols}.png`` under ``root``; each file appears whole or not at all."""
    label = _label(report)
    results = root / "results" / f"backtest_{label}_{day}.json"
    trades = root / "results" / f"trades_{label}_{day}.csv"
    chart = root / "charts" / f"equity_curve_{label}.png"
    for path in (results, chart):
        path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_text(results, json.dumps(report_json(report), indent=2) + "\n")
    with atomic.replacing(trades) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=TRADE_COLUMNS)
        writer.writeheader()
        writer.writerows(trade_rows(report))
    plot_equity(report, series, chart)
    return BacktestFiles(results, trades, chart)


def _atomic_text(path: Path, text: str) -> None:
    atomic.write_text(path, text)


def buy_and_hold_curve(report: RunReport, series: Sequence[BarSeries], ts: np.ndarray) -> np.ndarray:
    """Equal-weighted buy-and-hold of the run's symbols, worth the starting cash at the first bar,
    valued at each of ``ts`` (the last close at or before it)."""
    cash = float(report.config.get("cash", 0.0))
    value = np.zeros(ts.shape[0])
    for s in series:
        idx = np.clip(np.searchsorted(s.ts, ts, side="right") - 1, 0, len(s) - 1)
        value += s.close[idx] / s.close[0]
    return value * cash / max(len(series), 1)


def plot_equity(report: RunReport, series: Sequence[BarSeries], path: Path) -> None:
    """Equity vs buy-and-hold on top, drawdown below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = np.array([m.ts for m in report.marks], dtype=np.int64)
    when = ts.astype("datetime64[ns]")
    equity = np.array([m.equity for m in report.marks])
    drawdown = -np.array([m.drawdown_pct for m in report.marks])
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(11, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}, constrained_layout=True
    )
    top.plot(when, equity, color="#1f77b4", linewidth=1.3, label=f"{report.strategy} (net of costs)")
    if series:
        top.plot(
            when, buy_and_hold_curve(report, series, ts), color="#888888", linewidth=1.0, label="buy & hold"
        )
    adjusted = "adjusted" if report.adjusted else "unadjusted"
    top.set_title(f"{' '.join(report.symbols)} · {report.strategy} {report.params} · {adjusted} prices")
    top.set_ylabel("equity ($)")
    top.grid(alpha=0.3)
    top.legend(loc="upper left")
    bottom.fill_between(when, drawdown, 0.0, color="#d62728", alpha=0.4, step="post")
    bottom.set_ylabel("drawdown (%)")
    bottom.grid(alpha=0.3)
    try:
        with atomic.replacing(path) as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
