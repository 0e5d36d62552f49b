"""ATR breakout: buy a close more than m ATRs above the prior close, sell on the mirror-image drop."""

from __future__ import annotations

import math
from typing import Annotated

import msgspec
import numpy as np

from tape.events.bars import BarSeries
from tape.events.indicators import ATR, atr
from tape.events.strategies.base import BUY, LiveSignals, SignalSeries, Strategy, side_of, sides_from


class AtrBreakoutParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """ATR period and the breakout distance in ATRs."""

    period: Annotated[int, msgspec.Meta(ge=1, le=1000, description="ATR period (bars)")] = 14
    multiplier: Annotated[float, msgspec.Meta(gt=0, le=20, description="breakout distance in ATRs")] = 2.0


class AtrBreakout(Strategy):
    """Volatility breakout measured against the previous bar's ATR (known before this bar)."""

    name = "atr_breakout"
    summary = "buy when the close jumps m ATRs above the prior close, sell when it drops m ATRs below"
    Params = AtrBreakoutParams

    def warmup(self) -> int:
        return self.params.period + 2

    def signals(self, bars: BarSeries) -> SignalSeries:
        p = self.params
        value = atr(bars.high, bars.low, bars.close, p.period)
        prior_atr = np.full(len(bars), np.nan)
        prior_atr[1:] = value[:-1]
        prior_close = np.full(len(bars), np.nan)
        prior_close[1:] = bars.close[:-1]
        valid = ~np.isnan(prior_atr)
        band = p.multiplier * np.where(valid, prior_atr, 0.0)
        buy = valid & (bars.close > prior_close + band)
        sell = valid & (bars.close < prior_close - band)
        return SignalSeries(sides_from(buy, sell), {"atr": prior_atr, "prior_close": prior_close})

    def live(self) -> LiveSignals:
        return _LiveAtrBreakout(self.params)

    def describe(self, side: int, values: dict[str, float]) -> str:
        way = "above" if side == BUY else "below"
        return f"close broke {self.params.multiplier:g} ATR ({values['atr']:.4f}) {way} the prior close"


class _LiveAtrBreakout:
    __slots__ = ("_atr", "_m", "_prior_atr", "_prior_close")

    def __init__(self, p: AtrBreakoutParams) -> None:
        self._atr, self._m = ATR(p.period), p.multiplier
        self._prior_atr, self._prior_close = math.nan, math.nan

    def on_bar(
        self, open: float, high: float, low: float, close: float, volume: float
    ) -> tuple[int, dict[str, float]]:
        prior_atr, prior_close = self._prior_atr, self._prior_close
        valid = not math.isnan(prior_atr)
        band = self._m * (prior_atr if valid else 0.0)
        buy = valid and close > prior_close + band
        sell = valid and close < prior_close - band
        self._prior_atr, self._prior_close = self._atr.update(high, low, close), close
        return side_of(buy, sell), {"atr": prior_atr, "prior_close": prior_close}
