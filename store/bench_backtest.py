"""`tape bench backtest`: bars per second of a full backtest, every decision appended to the log.

One symbol of seeded synthetic 1-minute bars (a random walk, 390 bars a session), SMA 5/20 with the
default risk rules, stops, targets, costs and the daily-loss limit, into a fresh log. The clock covers
the signals, the per-bar loop, every event appended and committed; generating the bars is excluded.
Starting cash is large so the account never runs dry: the run keeps trading (and logging) to the end.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

import numpy as np

from tape.events.backtest import BacktestConfig
from tape.events.bars import BarSeries
from tape.store.backtests import backtest
from tape.store.log import EventLog

MINUTE_NS = 60_000_000_000
DAY_NS = 86_400_000_000_000


def synthetic_minute_bars(n: int, *, symbol: str = "SYN", seed: int = 7) -> BarSeries:
    """``n`` one-minute bars of a seeded random walk, 09:30-16:00 New York, consecutive weekdays."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0008, n)))
    open_ = np.empty(n)
    open_[0] = 100.0
    open_[1:] = close[:-1] * np.exp(rng.normal(0.0, 0.0002, n - 1))
    high = np.maximum(open_, close) * (1.0 + np.abs(rng.normal(0.0, 0.0004, n)))
    low = np.minimum(open_, close) * (1.0 - np.abs(rng.normal(0.0, 0.0004, n)))
    volume = rng.integers(100, 10_000, n).astype(np.float64)
    session, minute = np.divmod(np.arange(n), 390)
    day = session + 2 * (session // 5)  # skip weekends
    first_open = np.datetime64("2015-01-05T14:30", "ns").astype(np.int64)  # 09:30 New York (EST)
    ts = first_open + day * DAY_NS + minute * MINUTE_NS
    return BarSeries.from_arrays(symbol, "1Min", ts, open_, high, low, close, volume, source="synthetic")


def bench_backtest(*, bars: int = 1_000_000, strategy: str = "sma_cross") -> dict[str, Any]:
    """Time one full backtest of ``bars`` synthetic minute bars into a fresh log."""
    series = synthetic_minute_bars(bars)
    config = BacktestConfig(symbols=[series.symbol], strategy=strategy, timeframe="1Min", cash=10_000_000.0)
    with tempfile.TemporaryDirectory(prefix="tape-bench-") as tmp:
        log_path = os.path.join(tmp, "bench.db")
        start = time.perf_counter()
        outcome = backtest(config, log_path=log_path, data_path=None, loader=lambda c: [series])
        seconds = time.perf_counter() - start
        with EventLog.open(log_path) as log:
            stored = log.count()
    return {
        "bars": bars,
        "strategy": strategy,
        "events": stored,
        "trades": outcome.report.metrics["total_trades"],
        "seconds": round(seconds, 3),
        "bars_per_s": round(bars / seconds),
        "events_per_s": round(stored / seconds),
    }
