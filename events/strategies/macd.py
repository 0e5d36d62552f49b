"""MACD: buy when the MACD line crosses above its signal line, sell when it crosses below."""

from __future__ import annotations

import math
from typing import Annotated

import msgspec
import numpy as np

from tape.events.bars import BarSeries
from tape.events.indicators import MACD, macd
from tape.events.strategies.base import BUY, Crossing, LiveSignals, SignalSeries, Strategy, crossings

TIE = 1e-12  # relative dead band, as in sma_cross: float noise is not a cross


class MacdParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """EMA windows of the MACD line and of its signal line."""

    fast: Annotated[int, msgspec.Meta(ge=1, le=1000, description="fast EMA (bars)")] = 12
    slow: Annotated[int, msgspec.Meta(ge=2, le=1000, description="slow EMA (bars)")] = 26
    signal: Annotated[int, msgspec.Meta(ge=1, le=1000, description="signal-line EMA (bars)")] = 9

    def __post_init__(self) -> None:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be less than slow ({self.slow})")


class MacdStrategy(Strategy):
    """Trend following on MACD signal-line crosses."""

    name = "macd"
    summary = "buy when the MACD line crosses above its signal line, sell when it crosses below"
    Params = MacdParams

    def warmup(self) -> int:
        return self.params.slow + self.params.signal

    def signals(self, bars: BarSeries) -> SignalSeries:
        p = self.params
        line, signal, hist = macd(bars.close, p.fast, p.slow, p.signal)
        valid = ~np.isnan(signal)
        above = np.zeros(len(bars), dtype=bool)
        above[valid] = hist[valid] > TIE * np.abs(bars.close[valid])
        return SignalSeries(crossings(above, valid), {"macd": line, "signal": signal, "histogram": hist})

    def live(self) -> LiveSignals:
        return _LiveMacd(self.params)

    def describe(self, side: int, values: dict[str, float]) -> str:
        way = "above" if side == BUY else "below"
        return f"MACD {values['macd']:.4f} crossed {way} its signal {values['signal']:.4f}"


class _LiveMacd:
    __slots__ = ("_cross", "_macd")

    def __init__(self, p: MacdParams) -> None:
        self._macd, self._cross = MACD(p.fast, p.slow, p.signal), Crossing()

    def on_bar(
        self, open: float, high: float, low: float, close: float, volume: float
    ) -> tuple[int, dict[str, float]]:
        line, signal, hist = self._macd.update(close)
        valid = not math.isnan(signal)
        side = self._cross.update(valid and hist > TIE * abs(close), valid)
        return side, {"macd": line, "signal": signal, "histogram": hist}
