"""Market regimes from ADX and volatility: trending, ranging or volatile, bar by bar.

volatile: ATR is more than ``volatile_atr_pct`` % of the close; otherwise trending when ADX is above
``trend_adx``, ranging below. During the indicators' warm-up the regime is unknown (""). Both forms run
the same incremental indicators, so a backtest and a live session classify every bar identically.
"""

from __future__ import annotations

import math

import numpy as np

from tape.events.indicators import ADX, ATR

TRENDING, RANGING, VOLATILE = "trending", "ranging", "volatile"
REGIMES = (TRENDING, RANGING, VOLATILE)


def classify(adx: float, atr: float, close: float, *, trend_adx: float, volatile_atr_pct: float) -> str:
    """The regime of one bar from its indicator values ("" while they are undefined)."""
    if math.isnan(adx) or math.isnan(atr) or close <= 0:
        return ""
    if atr / close * 100.0 > volatile_atr_pct:
        return VOLATILE
    return TRENDING if adx > trend_adx else RANGING


class RegimeTracker:
    """Incremental regime of one symbol."""

    __slots__ = ("_adx", "_atr", "trend_adx", "values", "volatile_atr_pct")

    def __init__(self, period: int = 14, *, trend_adx: float = 25.0, volatile_atr_pct: float = 4.0) -> None:
        self._adx, self._atr = ADX(period), ATR(period)
        self.trend_adx, self.volatile_atr_pct = trend_adx, volatile_atr_pct
        self.values = (math.nan, math.nan)

    def update(self, high: float, low: float, close: float) -> str:
        """Feed the next bar; its regime."""
        adx = self._adx.update(high, low, close)[0]
        atr = self._atr.update(high, low, close)
        self.values = (adx, atr / close * 100.0 if close > 0 else math.nan)
        return classify(adx, atr, close, trend_adx=self.trend_adx, volatile_atr_pct=self.volatile_atr_pct)


def regimes(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    period: int = 14,
    *,
    trend_adx: float = 25.0,
    volatile_atr_pct: float = 4.0,
) -> tuple[list[str], list[float], list[float]]:
    """Regime, ADX and ATR % of every bar (causal: bar i uses bars <= i)."""
    tracker = RegimeTracker(period, trend_adx=trend_adx, volatile_atr_pct=volatile_atr_pct)
    out, adx_values, atr_pcts = [], [], []
    for h, lo, c in zip(high.tolist(), low.tolist(), close.tolist(), strict=True):
        out.append(tracker.update(h, lo, c))
        adx_values.append(tracker.values[0])
        atr_pcts.append(tracker.values[1])
    return out, adx_values, atr_pcts
