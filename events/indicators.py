"""Technical indicators, each in two forms that give the same numbers.

- a vectorised function over a whole numpy array, for backtests (causal: the value at t uses
  inputs at or before t only; the first ``warmup - 1`` values are NaN);
- an incremental class with ``update(x) -> value`` doing O(1) work per bar, for live actors.

Where it is cheap the two are bit-identical (the same floating-point operations in the same order:
``np.add.accumulate`` is a sequential running sum), so a backtest and a live run can never disagree on
a crossover; elsewhere they agree to 1e-9 (see tests/test_indicators.py).
"""

from __future__ import annotations

import math

import numpy as np

NAN = math.nan


def sma(values: np.ndarray, window: int) -> np.ndarray:
    """Simple moving average as a running sum: s_t = s_{t-1} + (x_t - x_{t-w}), like TA-Lib's."""
    x = np.asarray(values, dtype=np.float64)
    out = np.full(x.shape[0], NAN)
    if window <= 0:
        raise ValueError("window must be positive")
    if x.shape[0] < window:
        return out
    steps = np.empty(x.shape[0] - window + 1)
    steps[0] = np.add.accumulate(x[:window])[-1]
    steps[1:] = x[window:] - x[:-window]
    out[window - 1 :] = np.add.accumulate(steps) / window
    return out


class SMA:
    """Incremental simple moving average, bit-identical to :func:`sma`."""

    __slots__ = ("_buf", "_count", "_pos", "_sum", "value", "window")

    def __init__(self, window: int) -> None:
        if window <= 0:
            raise ValueError("window must be positive")
        self.window = window
        self._buf = [0.0] * window
        self._pos = 0
        self._count = 0
        self._sum = 0.0
        self.value = NAN

    def update(self, x: float) -> float:
        """Add the next input; returns the average (NaN until ``window`` inputs were seen)."""
        w = self.window
        if self._count < w:
            self._sum = x if self._count == 0 else self._sum + x
            self._buf[self._count] = x
            self._count += 1
            if self._count == w:
                self.value = self._sum / w
            return self.value
        old = self._buf[self._pos]
        self._buf[self._pos] = x
        self._pos = (self._pos + 1) % w
        self._sum = self._sum + (x - old)
        self.value = self._sum / w
        return self.value
