"""Technical indicators, each in two forms that give the same numbers.

- a vectorised function over a whole numpy array, for backtests (causal: the value at t uses
  inputs at or before t only; the first ``warmup - 1`` values are NaN);
- an incremental class with ``update(x) -> value`` doing O(1) work per bar, for live actors.

Where it is cheap the two are bit-identical (the same floating-point operations in the same order:
``np.add.accumulate`` is a sequential running sum), so a backtest and a live run can never disagree on
a crossover; elsewhere they agree to 1e-9 (see tests/test_indicators.py).

Seeding conventions, for comparing numbers with TA-Lib. SMA, EMA, RSI and ATR start as TA-Lib's do (an
EMA or Wilder average seeded with the simple mean of its first window, first value at the same index).
Two differ at the start of a series and converge as the seed's weight decays by (1 - 1/period) or
(1 - alpha) per bar (for period 14 it is below 1e-6 after about 200 bars):

- MACD: each EMA is seeded from its own first window, so the line starts at ``slow - 1`` with a fast
  EMA that has run since ``fast - 1``. TA-Lib starts both EMAs at ``slow - 1``, seeding the fast one with
  the mean of the ``fast`` closes ending there. The signal line is seeded the same way in both (the
  mean of the first ``signal`` line values; first at ``slow + signal - 2``).
- ADX: +DM, -DM and true range are summed over the first ``period`` changes and the first DI is that
  sum's ratio (index ``period``). TA-Lib sums the first ``period - 1`` changes and applies one Wilder
  step with the next, so its first smoothed sums weigh the opening bars by ``1 - 1/period`` less. Both
  put the first ADX (the Wilder mean of ``period`` DX values) at index ``2 * period - 1``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

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


# --------------------------------------------------------------------------- exponential and Wilder averages
#
# Recurrences cannot be vectorised exactly in numpy, so the "vectorised" forms run the same float
# operations as the incremental classes in a tight loop over Python floats: bit-identical by construction.
# The loops are list comprehensions with the step written inline (no function call per value), which
# is what makes them cheap enough for a million bars.

Recurrence = Callable[[float, list[float]], list[float]]


def _seeded_recurrence(x: np.ndarray, window: int, run: Recurrence) -> np.ndarray:
    """NaN until ``window`` inputs; then the SMA of the first ``window`` (the seed), then
    ``run(seed, rest)``: the recurrence's values over the remaining inputs."""
    if window <= 0:
        raise ValueError("window must be positive")
    out = np.full(x.shape[0], NAN)
    if x.shape[0] < window:
        return out
    head = x[:window].tolist()
    total = head[0]
    for v in head[1:]:
        total += v
    out[window - 1] = seed = total / window
    out[window:] = run(seed, x[window:].tolist())
    return out


def _ema_run(window: int) -> Recurrence:
    alpha = 2.0 / (window + 1.0)

    def run(prev: float, rest: list[float]) -> list[float]:
        return [prev := prev + alpha * (v - prev) for v in rest]

    return run


def _wilder_run(period: int) -> Recurrence:
    keep = period - 1.0

    def run(prev: float, rest: list[float]) -> list[float]:
        return [prev := (prev * keep + v) / period for v in rest]

    return run


def ema(values: np.ndarray, window: int) -> np.ndarray:
    """Exponential moving average, alpha = 2 / (window + 1), seeded with the SMA of the first window
    (TA-Lib's convention): first value at index ``window - 1``."""
    return _seeded_recurrence(np.asarray(values, dtype=np.float64), window, _ema_run(window))


class EMA:
    """Incremental :func:`ema` (bit-identical)."""

    __slots__ = ("_alpha", "_count", "_sum", "value", "window")

    def __init__(self, window: int) -> None:
        if window <= 0:
            raise ValueError("window must be positive")
        self.window, self._alpha = window, 2.0 / (window + 1.0)
        self._count, self._sum, self.value = 0, 0.0, NAN

    def update(self, x: float) -> float:
        """Add the next input; NaN until ``window`` inputs were seen."""
        if self._count < self.window:
            self._sum = x if self._count == 0 else self._sum + x
            self._count += 1
            if self._count == self.window:
                self.value = self._sum / self.window
            return self.value
        self.value = self.value + self._alpha * (x - self.value)
        return self.value


def rsi(close: np.ndarray, period: int = 14) -> np.ndarray:
    """Wilder's RSI: averages of gains and losses seeded with the mean of the first ``period`` changes,
    then Wilder-smoothed; first value at index ``period`` (as TA-Lib). A flat window reads 50."""
    c = np.asarray(close, dtype=np.float64)
    out = np.full(c.shape[0], NAN)
    if c.shape[0] <= period:
        return out
    change = np.diff(c)
    gains = _seeded_recurrence(np.maximum(change, 0.0), period, _wilder_run(period))
    losses = _seeded_recurrence(np.maximum(-change, 0.0), period, _wilder_run(period))
    out[1:] = _rsi_of(gains, losses)
    return out


def _rsi_of(gain: np.ndarray, loss: np.ndarray) -> np.ndarray:
    total = gain + loss
    with np.errstate(invalid="ignore", divide="ignore"):
        value = 100.0 * gain / total
    return np.where(total == 0.0, 50.0, value)


class RSI:
    """Incremental :func:`rsi` (bit-identical)."""

    __slots__ = ("_gain", "_loss", "_prev", "period", "value")

    def __init__(self, period: int = 14) -> None:
        self.period = period
        self._gain, self._loss = _WilderMean(period), _WilderMean(period)
        self._prev: float | None = None
        self.value = NAN

    def update(self, close: float) -> float:
        """Add the next close; NaN for the first ``period`` closes."""
        if self._prev is None:
            self._prev = close
            return self.value
        change = close - self._prev
        self._prev = close
        gain = self._gain.update(change if change > 0.0 else 0.0)
        loss = self._loss.update(-change if change < 0.0 else 0.0)
        if gain == gain:  # not NaN
            total = gain + loss
            self.value = 50.0 if total == 0.0 else 100.0 * gain / total
        return self.value


class _WilderMean:
    """Mean of the first ``period`` inputs, then (prev * (period - 1) + x) / period."""

    __slots__ = ("_count", "_sum", "period", "value")

    def __init__(self, period: int) -> None:
        if period <= 0:
            raise ValueError("period must be positive")
        self.period, self._count, self._sum, self.value = period, 0, 0.0, NAN

    def update(self, x: float) -> float:
        if self._count < self.period:
            self._sum = x if self._count == 0 else self._sum + x
            self._count += 1
            if self._count == self.period:
                self.value = self._sum / self.period
            return self.value
        self.value = (self.value * (self.period - 1.0) + x) / self.period
        return self.value


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """max(high - low, |high - prev close|, |low - prev close|); NaN at the first bar (no prev close)."""
    h, lo, c = (np.asarray(a, dtype=np.float64) for a in (high, low, close))
    out = np.full(h.shape[0], NAN)
    if h.shape[0] > 1:
        prev = c[:-1]
        out[1:] = np.maximum(h[1:] - lo[1:], np.maximum(np.abs(h[1:] - prev), np.abs(lo[1:] - prev)))
    return out


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int = 14) -> np.ndarray:
    """Wilder's average true range: the mean of the first ``period`` true ranges, then Wilder-smoothed;
    first value at index ``period`` (as TA-Lib)."""
    tr = true_range(high, low, close)
    out = np.full(tr.shape[0], NAN)
    if tr.shape[0] > period:
        out[1:] = _seeded_recurrence(tr[1:], period, _wilder_run(period))
    return out


class ATR:
    """Incremental :func:`atr` (bit-identical)."""

    __slots__ = ("_mean", "_prev_close", "value")

    def __init__(self, period: int = 14) -> None:
        self._mean = _WilderMean(period)
        self._prev_close: float | None = None
        self.value = NAN

    def update(self, high: float, low: float, close: float) -> float:
        """Add the next bar; NaN for the first ``period`` bars."""
        prev, self._prev_close = self._prev_close, close
        if prev is None:
            return self.value
        tr = max(high - low, abs(high - prev), abs(low - prev))
        self.value = self._mean.update(tr)
        return self.value


def macd(
    close: np.ndarray, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(MACD line, signal line, histogram): EMA(fast) - EMA(slow) from index ``slow - 1``; the signal is
    the EMA(signal) of the line seeded with its first ``signal`` values (first at ``slow + signal - 2``)."""
    c = np.asarray(close, dtype=np.float64)
    line = ema(c, fast) - ema(c, slow)
    sig = np.full(c.shape[0], NAN)
    start = slow - 1
    if c.shape[0] > start:
        sig[start:] = ema(line[start:], signal)
    return line, sig, line - sig


class MACD:
    """Incremental :func:`macd` (bit-identical)."""

    __slots__ = ("_fast", "_signal", "_slow")

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        self._fast, self._slow, self._signal = EMA(fast), EMA(slow), EMA(signal)

    def update(self, close: float) -> tuple[float, float, float]:
        """(line, signal, histogram) after the next close."""
        line = self._fast.update(close) - self._slow.update(close)
        sig = self._signal.update(line) if line == line else NAN
        return line, sig, line - sig


def rolling_std(values: np.ndarray, window: int) -> np.ndarray:
    """Population standard deviation (ddof = 0, as Bollinger bands use) over the last ``window`` values.

    Computed the way :class:`RollingStd` runs, so the two are bit-identical: exact sums (``math.fsum``)
    every ``window`` bars, running sums in between.
    """
    x = np.asarray(values, dtype=np.float64)
    n = x.shape[0]
    out = np.full(n, NAN)
    if window <= 1:
        raise ValueError("window must be at least 2")
    if n < window:
        return out
    mean = _ring_sums(x, window) / window
    out[window - 1 :] = np.sqrt(np.maximum(_ring_sums(x * x, window) / window - mean * mean, 0.0))
    return out


def _ring_sums(v: np.ndarray, window: int) -> np.ndarray:
    """Sums of the last ``window`` values from index ``window - 1`` on, as :class:`RollingStd` keeps them:
    an exact ``math.fsum`` at every full turn of its ring buffer, then running sums (+ new - old).

    The turns cut the series into rows of ``window`` values; ``np.add.accumulate`` along a row is the
    same sequential sum as the incremental class, so each row is accumulated on its own, all rows at once.
    """
    n = v.shape[0]
    rows = -(-(n - window + 1) // window)
    steps = np.zeros(rows * window)
    steps[: n - window] = v[window:] - v[:-window]
    # Row k starts at index window - 1 + k * window, re-summed exactly over v[k * window : (k + 1) * window].
    steps = np.concatenate(([0.0], steps[:-1])).reshape(rows, window)
    values = iter(v[: rows * window].tolist())
    steps[:, 0] = list(map(math.fsum, zip(*[values] * window, strict=False)))  # rows of window values
    return np.add.accumulate(steps, axis=1).ravel()[: n - window + 1]


class RollingStd:
    """Incremental :func:`rolling_std`: O(1) running sums, re-summed exactly every ``window`` updates so
    rounding never accumulates (agrees with the vectorised form to ~1e-12)."""

    __slots__ = ("_buf", "_count", "_pos", "_sum", "_sum2", "value", "window")

    def __init__(self, window: int) -> None:
        if window <= 1:
            raise ValueError("window must be at least 2")
        self.window, self._buf = window, [0.0] * window
        self._pos = self._count = 0
        self._sum = self._sum2 = 0.0
        self.value = NAN

    def update(self, x: float) -> float:
        """Add the next value; NaN until ``window`` values were seen."""
        old = self._buf[self._pos]
        self._buf[self._pos] = x
        self._pos = (self._pos + 1) % self.window
        self._count += 1
        if self._pos == 0:
            self._sum = math.fsum(self._buf)
            self._sum2 = math.fsum(v * v for v in self._buf)
        elif self._count > self.window:
            self._sum += x - old
            self._sum2 += x * x - old * old
        else:
            self._sum += x
            self._sum2 += x * x
        if self._count >= self.window:
            mean = self._sum / self.window
            self.value = math.sqrt(max(self._sum2 / self.window - mean * mean, 0.0))
        return self.value


def adx(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int = 14
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ADX, +DI, -DI), Wilder: +DM/-DM and true range summed over the first ``period`` bars then
    smoothed (S - S/period + x); DI from index ``period``, ADX (Wilder mean of DX) from ``2*period - 1``."""
    h, lo, c = (np.asarray(a, dtype=np.float64).tolist() for a in (high, low, close))
    state = ADX(period)
    n = len(h)
    out = np.full((3, n), NAN)
    for i in range(n):
        out[:, i] = state.update(h[i], lo[i], c[i])
    return out[0], out[1], out[2]


class ADX:
    """Incremental ADX / +DI / -DI; :func:`adx` runs this over the arrays, so the two are identical."""

    __slots__ = ("_adx", "_count", "_minus", "_plus", "_prev", "_tr", "period")

    def __init__(self, period: int = 14) -> None:
        self.period = period
        self._prev: tuple[float, float, float] | None = None
        self._count = 0
        self._tr = self._plus = self._minus = 0.0
        self._adx = _WilderMean(period)

    def update(self, high: float, low: float, close: float) -> tuple[float, float, float]:
        """(adx, plus_di, minus_di) after the next bar."""
        prev, self._prev = self._prev, (high, low, close)
        if prev is None:
            return NAN, NAN, NAN
        ph, pl, pc = prev
        up, down = high - ph, pl - low
        plus_dm = up if up > down and up > 0.0 else 0.0
        minus_dm = down if down > up and down > 0.0 else 0.0
        tr = max(high - low, abs(high - pc), abs(low - pc))
        self._count += 1
        p = self.period
        if self._count <= p:
            self._tr += tr
            self._plus += plus_dm
            self._minus += minus_dm
            if self._count < p:
                return NAN, NAN, NAN
        else:
            self._tr = self._tr - self._tr / p + tr
            self._plus = self._plus - self._plus / p + plus_dm
            self._minus = self._minus - self._minus / p + minus_dm
        plus_di = 100.0 * self._plus / self._tr if self._tr > 0 else 0.0
        minus_di = 100.0 * self._minus / self._tr if self._tr > 0 else 0.0
        total = plus_di + minus_di
        dx = 100.0 * abs(plus_di - minus_di) / total if total > 0 else 0.0
        return self._adx.update(dx), plus_di, minus_di
