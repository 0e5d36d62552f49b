"""RSI: buy when the RSI falls into oversold, sell when it rises into overbought."""

from __future__ import annotations

import math
from typing import Annotated

import msgspec
import numpy as np

from tape.events.bars import BarSeries
from tape.events.indicators import RSI, rsi
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


class RsiParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """RSI period and thresholds."""

    period: Annotated[int, msgspec.Meta(ge=2, le=1000, description="RSI period (bars)")] = 14
    oversold: Annotated[float, msgspec.Meta(ge=0, le=100, description="buy when RSI falls below")] = 30.0
    overbought: Annotated[float, msgspec.Meta(ge=0, le=100, description="sell when RSI rises above")] = 70.0

    def __post_init__(self) -> None:
        if self.oversold >= self.overbought:
            raise ValueError(f"oversold ({self.oversold:g}) must be below overbought ({self.overbought:g})")


class RsiStrategy(Strategy):
    """Mean reversion on Wilder's RSI, acting on the bar a threshold is crossed."""

    name = "rsi"
    summary = "buy when RSI(period) drops below oversold, sell when it rises above overbought"
    Params = RsiParams

    def warmup(self) -> int:
        return self.params.period + 2

    def signals(self, bars: BarSeries) -> SignalSeries:
        p = self.params
        value = rsi(bars.close, p.period)
        valid = ~np.isnan(value)
        buy = rising_edges(np.where(valid, value < p.oversold, False), valid)
        sell = rising_edges(np.where(valid, value > p.overbought, False), valid)
        return SignalSeries(sides_from(buy, sell), {"rsi": value})

    def live(self) -> LiveSignals:
        return _LiveRsi(self.params)

    def describe(self, side: int, values: dict[str, float]) -> str:
        p = self.params
        if side == BUY:
            return f"RSI({p.period}) {values['rsi']:.1f} fell below {p.oversold:g}"
        return f"RSI({p.period}) {values['rsi']:.1f} rose above {p.overbought:g}"


class _LiveRsi:
    __slots__ = ("_buy", "_p", "_rsi", "_sell")

    def __init__(self, params: RsiParams) -> None:
        self._p, self._rsi = params, RSI(params.period)
        self._buy, self._sell = RisingEdge(), RisingEdge()

    def on_bar(
        self, open: float, high: float, low: float, close: float, volume: float
    ) -> tuple[int, dict[str, float]]:
        value = self._rsi.update(close)
        valid = not math.isnan(value)
        buy = self._buy.update(valid and value < self._p.oversold, valid)
        sell = self._sell.update(valid and value > self._p.overbought, valid)
        return side_of(buy, sell), {"rsi": value}
