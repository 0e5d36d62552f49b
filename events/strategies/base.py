"""What a strategy is: typed parameters, a vectorised signal function and an incremental twin.

A strategy decides only buy / sell / hold from bars it has already seen. Sizing, risk and orders belong
to the portfolio. Both forms must give the same sides on the same bars (tests/test_strategies.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, NamedTuple, Protocol

import msgspec
import numpy as np

from tape.events.bars import BarSeries

BUY, SELL, HOLD = 1, -1, 0


class SignalSeries(NamedTuple):
    """Vectorised output: ``side[i]`` is BUY/SELL/HOLD decided at bar i's close; ``values`` are the
    indicator arrays behind it (recorded on Signal events)."""

    side: np.ndarray  # int8
    values: dict[str, np.ndarray]


class LiveSignals(Protocol):
    """Incremental form: one bar in, the side and indicator values at that bar out (O(1) work)."""

    def on_bar(
        self, open: float, high: float, low: float, close: float, volume: float
    ) -> tuple[int, dict[str, float]]:
        """Feed the next bar; returns (side, values) as of its close."""
        ...


class Strategy(ABC):
    """A named, parameterised signal generator. Subclasses set ``name``, ``summary`` and ``Params``."""

    name: ClassVar[str]
    summary: ClassVar[str]
    Params: ClassVar[type[msgspec.Struct]]

    def __init__(self, params: Any) -> None:
        self.params = params

    @abstractmethod
    def warmup(self) -> int:
        """Bars needed before the first signal can appear."""

    @abstractmethod
    def signals(self, bars: BarSeries) -> SignalSeries:
        """Sides for every bar at once (causal: side at i uses bars <= i only)."""

    @abstractmethod
    def live(self) -> LiveSignals:
        """A fresh incremental signal generator with the same parameters."""

    def describe(self, side: int, values: dict[str, float]) -> str:
        """One human sentence for a signal (recorded on the Signal event)."""
        return "buy" if side == BUY else "sell"

    def param_dict(self) -> dict[str, Any]:
        """Parameters as a plain dict (recorded on RunStarted)."""
        return msgspec.to_builtins(self.params)  # type: ignore[no-any-return]


def crossings(above: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """BUY where ``above`` turns true, SELL where it turns false; both bars must be ``valid``."""
    side = np.zeros(above.shape[0], dtype=np.int8)
    if above.shape[0] < 2:
        return side
    both = valid[1:] & valid[:-1]
    side[1:][both & above[1:] & ~above[:-1]] = BUY
    side[1:][both & ~above[1:] & above[:-1]] = SELL
    return side


class Crossing:
    """Incremental twin of :func:`crossings`."""

    __slots__ = ("_prev",)

    def __init__(self) -> None:
        self._prev: bool | None = None

    def update(self, above: bool, valid: bool) -> int:
        """The side at this bar given whether the condition holds and whether it is defined."""
        if not valid:
            self._prev = None
            return HOLD
        prev, self._prev = self._prev, above
        if prev is None or prev == above:
            return HOLD
        return BUY if above else SELL


def rising_edges(condition: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """True at bars where ``condition`` becomes true (it was false, and defined, the bar before)."""
    out = np.zeros(condition.shape[0], dtype=bool)
    if condition.shape[0] > 1:
        out[1:] = condition[1:] & ~condition[:-1] & valid[1:] & valid[:-1]
    return out


class RisingEdge:
    """Incremental twin of :func:`rising_edges`."""

    __slots__ = ("_prev",)

    def __init__(self) -> None:
        self._prev: bool | None = None

    def update(self, condition: bool, valid: bool) -> bool:
        """Whether the condition became true at this bar."""
        if not valid:
            self._prev = None
            return False
        prev, self._prev = self._prev, condition
        return prev is not None and condition and not prev


def sides_from(buy: np.ndarray, sell: np.ndarray) -> np.ndarray:
    """BUY/SELL/HOLD per bar from two masks (a bar that is both holds)."""
    side = np.zeros(buy.shape[0], dtype=np.int8)
    side[buy & ~sell] = BUY
    side[sell & ~buy] = SELL
    return side


def side_of(buy: bool, sell: bool) -> int:
    """Incremental twin of :func:`sides_from` for one bar."""
    if buy == sell:
        return HOLD
    return BUY if buy else SELL
