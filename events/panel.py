"""A universe's bars aligned on one clock: what a portfolio strategy reads.

Every symbol's bars go on the union of all their timestamps, as arrays shaped bars x symbols. A symbol
with no bar at a timestamp (not listed yet, delisted, a holiday on its exchange) has NaN prices there
and is not *tradable* there: it cannot receive a weight.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tape.events.bars import BarSeries
from tape.events.errors import DataError


@dataclass(frozen=True, slots=True)
class Panel:
    """Aligned OHLCV of several symbols: ``close[t, j]`` is symbol ``j``'s close at ``ts[t]`` (NaN
    where it has no bar); ``tradable[t, j]`` says it has one. ``session`` is the exchange day of each
    row (days since 1970-01-01)."""

    symbols: tuple[str, ...]
    ts: np.ndarray
    session: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    tradable: np.ndarray

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    @property
    def width(self) -> int:
        """How many symbols."""
        return len(self.symbols)

    def upto(self, t: int) -> Panel:
        """Rows ``0`` to ``t`` (included): what was known at row ``t``'s close."""
        end = t + 1
        return Panel(
            self.symbols,
            self.ts[:end],
            self.session[:end],
            *(a[:end] for a in (self.open, self.high, self.low, self.close, self.volume, self.tradable)),
        )

    def row(self, t: int) -> CrossSection:
        """Every symbol's bar at row ``t``."""
        return CrossSection(
            self.symbols,
            int(self.ts[t]),
            int(self.session[t]),
            *(a[t] for a in (self.open, self.high, self.low, self.close, self.volume, self.tradable)),
        )


@dataclass(frozen=True, slots=True)
class CrossSection:
    """Every symbol's bar at one timestamp (the incremental form's input); NaN where none."""

    symbols: tuple[str, ...]
    ts: int
    session: int
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    tradable: np.ndarray


def panel_of(series: Sequence[BarSeries]) -> Panel:
    """Align ``series`` (one per symbol, distinct symbols) on the union of their timestamps."""
    series = [s for s in series if len(s)]
    if not series:
        raise DataError("no bars to build a panel from")
    names = tuple(s.symbol for s in series)
    if len(set(names)) != len(names):
        raise DataError(f"a symbol appears twice in the universe: {names}")
    ts = np.unique(np.concatenate([s.ts for s in series]))
    rows, width = ts.shape[0], len(series)
    columns = {name: np.full((rows, width), np.nan) for name in ("open", "high", "low", "close", "volume")}
    tradable = np.zeros((rows, width), dtype=bool)
    session = np.zeros(rows, dtype=np.int64)
    for j, s in enumerate(series):
        at = np.searchsorted(ts, s.ts)
        for name, array in columns.items():
            array[at, j] = getattr(s, name)
        tradable[at, j] = True
        session[at] = s.session
    return Panel(names, ts, session, **columns, tradable=tradable)
