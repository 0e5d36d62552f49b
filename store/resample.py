"""Coarser bars from finer stored ones, built on read (nothing derived is written to the cache).

A bucket's bar is the usual OHLCV aggregate: the first open, the highest high, the lowest low, the last
close and the summed volume (and the last adjusted close). Buckets are whole multiples of the target
bar size counted from midnight: UTC midnight for a crypto pair, which trades around the clock, and
New York midnight for a stock, so a stock's hours are clock hours of its exchange (09:30-09:59 is the
09:00 bar, as Alpaca stamps them) and its days are exchange sessions. A bucket is stamped with its start;
a bucket with no bars yields no bar.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tape.events.bars import NY_TZ
from tape.events.symbols import is_pair
from tape.events.timeframes import NS_PER_DAY, timeframe_ns


def can_resample(stored: str, target: str) -> bool:
    """True when ``target`` bars are whole groups of ``stored`` bars that tile a day."""
    finer, coarser = timeframe_ns(stored), timeframe_ns(target)
    return finer < coarser <= NS_PER_DAY and coarser % finer == 0 and NS_PER_DAY % coarser == 0


def bucket_starts(ts: np.ndarray, symbol: str, target: str) -> np.ndarray:
    """The start (ns UTC) of the ``target`` bucket each bar falls in (see the module's rule)."""
    size = timeframe_ns(target)
    if is_pair(symbol):
        return ts // size * size
    local = pd.DatetimeIndex(ts.astype("datetime64[ns]"), tz="UTC").tz_convert(NY_TZ)
    offset = local.tz_localize(None).asi8 - ts  # this bar's distance from UTC on New York's clock
    wall = ts + offset
    start_wall = wall // size * size
    if size == NS_PER_DAY:  # a session is stamped at New York midnight, which always exists
        return pd.DatetimeIndex(start_wall.astype("datetime64[ns]")).tz_localize(NY_TZ).asi8
    return start_wall - offset


def resample_columns(
    ts: np.ndarray, columns: dict[str, np.ndarray | None], symbol: str, target: str
) -> tuple[np.ndarray, dict[str, np.ndarray | None]]:
    """Aggregate sorted bars into ``target`` buckets; returns the bucket starts and their columns."""
    starts = bucket_starts(ts, symbol, target)
    first = np.flatnonzero(np.r_[True, starts[1:] != starts[:-1]])
    last = np.r_[first[1:] - 1, len(ts) - 1]
    out: dict[str, np.ndarray | None] = {}
    for name, values in columns.items():
        if values is None:
            out[name] = None
        elif name == "open":
            out[name] = values[first]
        elif name == "high":
            out[name] = np.maximum.reduceat(values, first)
        elif name == "low":
            out[name] = np.minimum.reduceat(values, first)
        elif name == "volume":
            out[name] = np.add.reduceat(values, first)
        else:  # close, adj_close
            out[name] = values[last]
    return starts[first], out
