"""SimpleSMA: buy when the short SMA crosses above the long SMA, sell when it crosses below."""

from __future__ import annotations

import math
from typing import Annotated

import msgspec
import numpy as np

from tape.events.bars import BarSeries
from tape.events.indicators import SMA, sma
from tape.events.strategies.base import BUY, Crossing, LiveSignals, SignalSeries, Strategy, crossings

# A relative dead band: float noise on flat prices (the averages equal to the last bit or not) must not
# read as a cross. 1e-12 of the price is far below any real move.
TIE = 1e-12


class SmaCrossParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Windows of the two simple moving averages (bars)."""

    short: Annotated[int, msgspec.Meta(ge=1, le=10_000, description="fast SMA window (bars)")] = 5
    long: Annotated[int, msgspec.Meta(ge=2, le=10_000, description="slow SMA window (bars)")] = 20

    def __post_init__(self) -> None:
        if self.short >= self.long:
            raise ValueError(f"short ({self.short}) must be less than long ({self.long})")


class SmaCross(Strategy):
    """Trend following on two simple moving averages; holds between crosses."""

    name = "sma_cross"
    summary = "buy when SMA(short) crosses above SMA(long), sell when it crosses below"
    Params = SmaCrossParams

    def warmup(self) -> int:
        return self.params.long + 1

    def signals(self, bars: BarSeries) -> SignalSeries:
        fast, slow = sma(bars.close, self.params.short), sma(bars.close, self.params.long)
        valid = ~np.isnan(slow)
        above = np.zeros(len(bars), dtype=bool)
        above[valid] = (fast[valid] - slow[valid]) > TIE * np.abs(slow[valid])
        return SignalSeries(crossings(above, valid), {"sma_short": fast, "sma_long": slow})

    def live(self) -> LiveSignals:
        return _LiveSmaCross(self.params.short, self.params.long)

    def describe(self, side: int, values: dict[str, float]) -> str:
        way = "above" if side == BUY else "below"
        return f"SMA({self.params.short}) crossed {way} SMA({self.params.long})"


class _LiveSmaCross:
    __slots__ = ("_cross", "_fast", "_slow")

    def __init__(self, short: int, long: int) -> None:
        self._fast, self._slow, self._cross = SMA(short), SMA(long), Crossing()

    def on_bar(
        self, open: float, high: float, low: float, close: float, volume: float
    ) -> tuple[int, dict[str, float]]:
        fast, slow = self._fast.update(close), self._slow.update(close)
        valid = not math.isnan(slow)
        side = self._cross.update(valid and (fast - slow) > TIE * abs(slow), valid)
        return side, {"sma_short": fast, "sma_long": slow}
