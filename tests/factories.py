"""Small hand-made bar series for tests that pin numbers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tape.events.bars import BarSeries

DAY_NS = 86_400_000_000_000
# 2024-01-02 00:00 America/New_York (05:00 UTC): daily bars start at New York midnight.
FIRST_DAY_NS = 1_704_171_600_000_000_000


def daily_bars(
    symbol: str,
    close: Sequence[float],
    *,
    open: Sequence[float] | None = None,
    high: Sequence[float] | None = None,
    low: Sequence[float] | None = None,
    first_day_ns: int = FIRST_DAY_NS,
) -> BarSeries:
    """Daily bars on consecutive days; open defaults to the close, high/low hug open and close."""
    c = np.asarray(close, dtype=np.float64)
    o = np.asarray(open, dtype=np.float64) if open is not None else c.copy()
    h = np.asarray(high, dtype=np.float64) if high is not None else np.maximum(o, c)
    lo = np.asarray(low, dtype=np.float64) if low is not None else np.minimum(o, c)
    ts = first_day_ns + np.arange(c.shape[0], dtype=np.int64) * DAY_NS
    return BarSeries.from_arrays(symbol, "1Day", ts, o, h, lo, c, np.full(c.shape[0], 1000.0))


def random_walk_bars(symbol: str, n: int, *, seed: int, vol: float = 0.02) -> BarSeries:
    """A seeded daily random walk with consistent OHLC."""
    rng = np.random.default_rng(seed)
    close = 50.0 * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
    open_ = np.r_[50.0, close[:-1]] * np.exp(rng.normal(0.0, vol / 4, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0.0, vol / 2, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0.0, vol / 2, n)))
    return daily_bars(symbol, close, open=open_, high=high, low=low)
