"""The files a backtest leaves for humans: the results JSON, the trades CSV and the equity chart.

All three are projections of the run's report (itself a fold of the log), so they can be rebuilt from
the log at any time.
"""

from __future__ import annotations

import csv
import json
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import msgspec
import numpy as np

from tape.events.bars import BarSeries
from tape.events.metrics import Trade
from tape.events.report import RunReport, market_time, report_json, trade_rows
from tape.events.timeframes import is_intraday
from tape.store import atomic

if TYPE_CHECKING:  # matplotlib loads only when a chart is drawn
    from matplotlib.figure import Figure

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
    "side",
    "borrow_fee",
]


class BacktestFiles(NamedTuple):
    """Where the files of one backtest were written."""

    results: Path
    trades: Path
    chart: Path


def symbols_label(symbols: Sequence[str], dataset: str = "") -> str:
    """The symbols part of a file name: the names joined by '-', or for a universe its size (and
    dataset), so a 20-symbol run's files keep readable names (the run or job id keeps them apart)."""
    if len(symbols) > MAX_TITLE_SYMBOLS:
        return f"{dataset}-{len(symbols)}-symbols" if dataset else f"{len(symbols)}-symbols"
    return "-".join(s.replace("/", "") for s in symbols)


def symbols_phrase(symbols: Sequence[str], dataset: str = "") -> str:
    """The symbols as a title names them: each one, or for a universe its size (and dataset)."""
    if len(symbols) > MAX_TITLE_SYMBOLS:
        return f"{len(symbols)} symbols" + (f" of {dataset}" if dataset else "")
    return ", ".join(symbols)


def _label(report: RunReport) -> str:
    return symbols_label(report.symbols, report.config.get("dataset") or "")


def write_backtest_files(
    report: RunReport,
    series: Sequence[BarSeries],
    *,
    root: Path,
    day: str,
    log_scale: bool | None = None,
) -> BacktestFiles:
    """Write ``results/backtest_{symbols}_{day}_{run}.json``, ``results/trades_{symbols}_{day}_{run}.csv``
    and ``charts/equity_curve_{symbols}_{run}.png`` under ``root`` (``run`` is the run id, so two runs on
    the same symbols and day keep their own files); each file appears whole or not at all."""
    label = _label(report)
    results = root / "results" / f"backtest_{label}_{day}_{report.run_id}.json"
    trades = root / "results" / f"trades_{label}_{day}_{report.run_id}.csv"
    chart = root / "charts" / f"equity_curve_{label}_{report.run_id}.png"
    for path in (results, chart):
        path.parent.mkdir(parents=True, exist_ok=True)
    # The C encoder, then indented: the same text as json.dumps(indent=2), which is pure Python.
    rows = trade_rows(report)
    _atomic_text(results, msgspec.json.format(json.dumps(report_json(report, rows)), indent=2) + "\n")
    with atomic.replacing(trades) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(TRADE_COLUMNS)
        writer.writerows([row[c] for c in TRADE_COLUMNS] for row in rows)
    plot_equity(report, series, chart, log_scale=log_scale)
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


def stitched_buy_and_hold(
    series: Sequence[BarSeries], windows: Sequence[tuple[int, int]], ts: np.ndarray, start: float
) -> np.ndarray:
    """Equal-weighted buy & hold held only inside ``windows`` (walk-forward test windows), each window
    starting with what the previous one ended with, valued at ``ts`` (which lie inside the windows)."""
    value = np.full(ts.shape[0], np.nan)
    worth = start
    for lo, hi in windows:
        inside = (ts >= lo) & (ts <= hi)
        if not inside.any():
            continue
        growth = np.zeros(int(inside.sum()))
        for s in series:
            if not len(s):
                continue
            first = min(int(np.searchsorted(s.ts, lo, side="left")), len(s) - 1)
            at = np.clip(np.searchsorted(s.ts, ts[inside], side="right") - 1, first, len(s) - 1)
            growth += s.close[at] / s.close[first]
        value[inside] = worth * growth / max(len(series), 1)
        worth = float(value[inside][-1])
    return value


def equity_by_bar(report: RunReport, series: Sequence[BarSeries], ts: np.ndarray) -> np.ndarray:
    """The run's equity at each of ``ts`` (bar times): starting cash, plus the P&L of trades closed by
    then, plus open trades marked at their symbol's last close (entry commission counted at the exit,
    as the trade's P&L books it)."""
    cash = float(report.config.get("cash", 0.0))
    closes = {s.symbol: s for s in series}
    trades = sorted(report.trades, key=lambda t: t.exit_ts)
    exit_ts = np.array([t.exit_ts for t in trades], dtype=np.int64)
    realized = np.r_[0.0, np.cumsum([t.pnl for t in trades])]
    equity = cash + realized[np.searchsorted(exit_ts, ts, side="right")]
    if _mark_disjoint_trades(equity, trades, closes, ts):
        return equity
    for trade in trades:
        bars = closes.get(trade.symbol)
        if bars is None:
            continue
        lo, hi = (
            np.searchsorted(ts, trade.entry_ts, side="left"),
            np.searchsorted(ts, trade.exit_ts, side="left"),
        )
        if lo >= hi:
            continue
        at = np.clip(np.searchsorted(bars.ts, ts[lo:hi], side="right") - 1, 0, len(bars) - 1)
        equity[lo:hi] += trade.qty * (bars.close[at] - trade.entry_price)
    return equity


def _mark_disjoint_trades(
    equity: np.ndarray, trades: Sequence[Trade], closes: dict[str, BarSeries], ts: np.ndarray
) -> bool:
    """Add the open trades' marks to ``equity`` in one pass when no two trades are open on the same
    bar (each bar then gets one addition, the one the per-trade loop would make); False otherwise."""
    marked = [t for t in trades if t.symbol in closes]
    if not marked:
        return True
    lo = np.searchsorted(ts, np.array([t.entry_ts for t in marked], dtype=np.int64), side="left")
    hi = np.searchsorted(ts, np.array([t.exit_ts for t in marked], dtype=np.int64), side="left")
    open_ = lo < hi
    lo, hi = lo[open_], hi[open_]
    order = np.argsort(lo, kind="stable")
    if np.any(lo[order][1:] < hi[order][:-1]):
        return False
    kept = [t for t, keep in zip(marked, open_, strict=True) if keep]
    span = hi - lo
    bar = np.repeat(lo - np.r_[0, np.cumsum(span)[:-1]], span) + np.arange(int(span.sum()))
    which = np.repeat(np.arange(len(kept)), span)
    qty = np.array([t.qty for t in kept], dtype=np.float64)[which]
    entry = np.array([t.entry_price for t in kept], dtype=np.float64)[which]
    close = np.empty(len(bar))
    symbols = np.array([t.symbol for t in kept], dtype=object)[which]
    for symbol in {t.symbol for t in kept}:
        mine = symbols == symbol
        bars = closes[symbol]
        at = np.clip(np.searchsorted(bars.ts, ts[bar[mine]], side="right") - 1, 0, len(bars) - 1)
        close[mine] = bars.close[at]
    equity[bar] += qty * (close - entry)
    return True


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` of int64 stamps by sorting (its hash path is slow on half a million stamps)."""
    values = np.sort(values, kind="stable")
    return values[np.r_[True, values[1:] != values[:-1]]] if len(values) else values


def _curve(report: RunReport, series: Sequence[BarSeries]) -> tuple[np.ndarray, np.ndarray]:
    """Times and equity to draw: every bar for an intraday run (its marks are daily), the marks of a
    daily one; both start at the first bar with the starting cash."""
    cash = float(report.config.get("cash", 0.0))
    first = min((int(s.ts[0]) for s in series if len(s)), default=report.start_ts)
    if is_intraday(report.timeframe) and series:
        stamps = _sorted_unique(np.concatenate([s.ts for s in series]))
        stamps = stamps[(stamps >= first) & (stamps <= report.end_ts)]
        return np.r_[first, stamps], np.r_[cash, equity_by_bar(report, series, stamps)]
    ts = np.array([m.ts for m in report.marks], dtype=np.int64)
    equity = np.array([m.equity for m in report.marks], dtype=np.float64)
    if not len(ts) or ts[0] > first:
        ts, equity = np.r_[first, ts], np.r_[cash, equity]
    return ts, equity


def chart_title(report: RunReport) -> tuple[str, str]:
    """The chart's two title lines: what ran on what, then when and at what cost."""
    params = " ".join(f"{k}={v}" for k, v in report.params.items())
    cost = dict(report.config.get("cost", {}))
    costs = [
        f"slippage {cost.get('slippage_bps', 0):g} bps",
        f"commission ${cost.get('commission', 0):,.2f}/order",
    ]
    if cost.get("fee_bps") is not None:
        costs.append(f"fee {cost['fee_bps']:g} bps")
    prices = "adjusted" if report.adjusted else "unadjusted"
    first, last = (
        market_time(t, report.timeframe).replace("T", " ") for t in (report.start_ts, report.end_ts)
    )
    zone = " New York time" if is_intraday(report.timeframe) else ""
    period = f"{first} to {last}{zone}"
    symbols = symbols_phrase(report.symbols, report.config.get("dataset") or "")
    title = textwrap.fill(f"{report.strategy} {params} on {symbols}".replace("  ", " "), TITLE_WIDTH)
    return title, f"{period} · {report.timeframe} bars, {prices} prices · {', '.join(costs)}"


MAX_TITLE_SYMBOLS = 8
TITLE_WIDTH = 110  # characters a title line holds on the chart's width


def rebalances(report: RunReport) -> bool:
    """Whether the run is a portfolio strategy's (its parameters carry its rebalance schedule): its
    trades are monthly trims, not entries and exits worth a marker each."""
    return "rebalance" in report.params


def plot_equity(
    report: RunReport, series: Sequence[BarSeries], path: Path, *, log_scale: bool | None = None
) -> Path:
    """:func:`equity_chart` written to ``path``."""
    from tape.store.charts import save_figure  # matplotlib loads only when a chart is drawn

    return save_figure(equity_chart(report, series, log_scale=log_scale), path)


def equity_chart(report: RunReport, series: Sequence[BarSeries], *, log_scale: bool | None = None) -> Figure:
    """Equity and buy & hold with entry/exit markers on top, both drawdowns below."""
    from tape.store.charts import equity_figure

    ts, equity = _curve(report, series)
    hold = buy_and_hold_curve(report, series, ts) if series else None

    def on_curve(at: np.ndarray) -> np.ndarray:
        return equity[np.clip(np.searchsorted(ts, at, side="right") - 1, 0, len(ts) - 1)]

    trades = [] if rebalances(report) else report.trades
    entries = np.array([t.entry_ts for t in trades if t.side != "short"], dtype=np.int64)
    shorts = np.array([t.entry_ts for t in trades if t.side == "short"], dtype=np.int64)
    exits = np.array([t.exit_ts for t in trades], dtype=np.int64)
    title, subtitle = chart_title(report)
    return equity_figure(
        ts=ts,
        equity=equity,
        hold=hold,
        entries=(entries, on_curve(entries)),
        short_entries=(shorts, on_curve(shorts)),
        exits=(exits, on_curve(exits)),
        title=title,
        subtitle=subtitle,
        strategy_label=f"{report.strategy} (net of costs)",
        log_scale=log_scale,
    )


def equity_curve(report: RunReport, series: Sequence[BarSeries]) -> tuple[np.ndarray, np.ndarray]:
    """The times and equity the equity chart draws (every bar intraday, the daily marks otherwise)."""
    return _curve(report, series)
