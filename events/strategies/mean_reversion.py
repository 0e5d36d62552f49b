"""Mean reversion: buy a close k standard deviations below its moving mean, sell back at the mean."""

from __future__ import annotations

import math
from typing import Annotated

import msgspec
import numpy as np

from tape.events.bars import BarSeries
from tape.events.indicators import SMA, RollingStd, rolling_std, sma
from tape.events.strategies.base import (
    BUY,
    LiveSignals,
    RisingEdge,
    SignalSeries,
    Strategy,
    rising_edges,
    side_of,
    sides_from,
)


class MeanReversionParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Window of the mean and deviation, and how far below the mean to buy."""

    window: Annotated[int, msgspec.Meta(ge=2, le=1000, description="mean and deviation window (bars)")] = 20
    k: Annotated[float, msgspec.Meta(gt=0, le=10, description="buy below mean - k standard deviations")] = 1.5


class MeanReversion(Strategy):
    """Buy stretched-down closes, exit when price is back at its mean."""

    name = "mean_reversion"
    summary = "buy when the close falls k sigma below its mean, sell when it reverts to the mean"
    Params = MeanReversionParams

    def warmup(self) -> int:
        return self.params.window + 1

    def signals(self, bars: BarSeries) -> SignalSeries:
        p = self.params
        mean, std = sma(bars.close, p.window), rolling_std(bars.close, p.window)
        valid = ~np.isnan(mean) & ~np.isnan(std)
        lower = mean - p.k * std
        buy = rising_edges(np.where(valid, bars.close < lower, False), valid)
        sell = rising_edges(np.where(valid, bars.close >= mean, False), valid)
        return SignalSeries(sides_from(buy, sell), {"mean": mean, "std": std, "lower": lower})

    def live(self) -> LiveSignals:
        return _LiveMeanReversion(self.params)

    def describe(self, side: int, values: dict[str, float]) -> str:
        if side == BUY:
            return f"close fell below mean - {self.params.k:g} sigma ({values['lower']:.4f})"
        return f"close reverted to the {self.params.window}-bar mean ({values['mean']:.4f})"


class _LiveMeanReversion:
    __slots__ = ("_buy", "_k", "_mean", "_sell", "_std")

    def __init__(self, p: MeanReversionParams) -> None:
        self._mean, self._std, self._k = SMA(p.window), RollingStd(p.window), p.k
        self._buy, self._sell = RisingEdge(), RisingEdge()

    def on_bar(
        self, open: float, high: float, low: float, close: float, volume: float
    ) -> tuple[int, dict[str, float]]:
        mean, std = self._mean.update(close), self._std.update(close)
        valid = not (math.isnan(mean) or math.isnan(std))
        lower = mean - self._k * std
        buy = self._buy.update(valid and close < lower, valid)
        sell = self._sell.update(valid and close >= mean, valid)
        return side_of(buy, sell), {"mean": mean, "std": std, "lower": lower}
