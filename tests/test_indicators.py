"""Indicators: published reference values, independent naive computations, and vectorised == incremental."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tape.events.indicators import (
    ADX,
    ATR,
    EMA,
    MACD,
    RSI,
    SMA,
    RollingStd,
    adx,
    atr,
    ema,
    macd,
    rolling_std,
    rsi,
    sma,
)

# Wilder's RSI worked example as published by StockCharts ChartSchool ("Relative Strength Index (RSI)",
# spreadsheet cs-rsi.xls): 33 closes, RSI(14) from the 15th close, rounded to 2 decimals there.
RSI_CLOSES = [
    44.34, 44.09, 44.15, 43.61, 44.33, 44.83, 45.10, 45.42, 45.84, 46.08, 45.89, 46.03, 45.61, 46.28, 46.28,
    46.00, 46.03, 46.41, 46.22, 45.64, 46.21, 46.25, 45.71, 46.45, 45.78, 45.35, 44.03, 44.18, 44.22, 44.57,
    43.42, 42.66, 43.13,
]  # fmt: skip
RSI_PUBLISHED = [
    70.53, 66.32, 66.55, 69.41, 66.36, 57.97, 62.93, 63.26, 56.06, 62.38, 54.71, 50.42, 39.99, 41.46, 41.87,
    45.46, 37.30, 33.08, 37.77,
]  # fmt: skip


def _bars(n: int = 10_000, seed: int = 42) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    high = close * (1 + np.abs(rng.normal(0, 0.005, n)))
    low = close * (1 - np.abs(rng.normal(0, 0.005, n)))
    return high, low, close


def test_rsi_matches_the_published_worked_example() -> None:
    values = rsi(np.array(RSI_CLOSES), 14)
    assert np.isnan(values[:14]).all()
    # The published table is a spreadsheet's 2-decimal output; every row agrees within 0.07 (a
    # different smoothing, e.g. an EMA instead of Wilder's, is off by whole points).
    assert np.abs(values[14:] - np.array(RSI_PUBLISHED)).max() < 0.075


def _naive_ema(x: list[float], n: int) -> list[float]:
    out = [math.nan] * len(x)
    out[n - 1] = sum(x[:n]) / n
    k = 2 / (n + 1)
    for i in range(n, len(x)):
        out[i] = x[i] * k + out[i - 1] * (1 - k)
    return out


def test_ema_is_seeded_with_the_sma_of_the_first_window() -> None:
    x = [22.27, 22.19, 22.08, 22.17, 22.18, 22.13, 22.23, 22.43, 22.24, 22.29, 22.15, 22.39]
    values = ema(np.array(x), 10)
    assert np.isnan(values[:9]).all()
    assert values[9] == pytest.approx(sum(x[:10]) / 10)
    assert values[10:] == pytest.approx(_naive_ema(x, 10)[10:], abs=1e-12)


def test_atr_seeds_with_the_mean_true_range_then_smooths_like_wilder() -> None:
    high, low, close = (a[:40] for a in _bars(40, seed=3))
    tr = [
        max(high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1])) for i in range(1, 40)
    ]
    expected = [sum(tr[:14]) / 14]
    for value in tr[14:]:
        expected.append((expected[-1] * 13 + value) / 14)
    values = atr(high, low, close, 14)
    assert np.isnan(values[:14]).all()
    assert values[14:] == pytest.approx(expected, abs=1e-12)


def test_macd_lines_start_where_ta_lib_starts_them() -> None:
    line, signal, hist = macd(_bars(200)[2])
    assert np.isnan(line[:25]).all() and not np.isnan(line[25])
    assert np.isnan(signal[:33]).all() and not np.isnan(signal[33])
    assert hist[40] == pytest.approx(line[40] - signal[40])


def test_rolling_std_is_the_population_deviation() -> None:
    x = np.array([2.0, 4, 4, 4, 5, 5, 7, 9])
    assert rolling_std(x, 8)[-1] == pytest.approx(2.0)  # the textbook example


def test_adx_is_high_in_a_steady_trend_and_di_points_its_way() -> None:
    n = 120
    close = np.linspace(100, 160, n)
    high, low = close + 0.5, close - 0.5
    value, plus, minus = adx(high, low, close, 14)
    assert np.isnan(value[:27]).all() and not np.isnan(value[27])
    assert value[-1] > 90 and plus[-1] > minus[-1]


@pytest.mark.parametrize(
    ("vector", "make", "inputs"),
    [
        (lambda h, lo, c: [sma(c, 20)], lambda: SMA(20), "c"),
        (lambda h, lo, c: [ema(c, 12)], lambda: EMA(12), "c"),
        (lambda h, lo, c: [rsi(c, 14)], lambda: RSI(14), "c"),
        (lambda h, lo, c: [atr(h, lo, c, 14)], lambda: ATR(14), "hlc"),
        (lambda h, lo, c: list(macd(c, 12, 26, 9)), lambda: MACD(12, 26, 9), "c"),
        (lambda h, lo, c: [rolling_std(c, 20)], lambda: RollingStd(20), "c"),
        (lambda h, lo, c: list(adx(h, lo, c, 14)), lambda: ADX(14), "hlc"),
    ],
    ids=["sma", "ema", "rsi", "atr", "macd", "rolling_std", "adx"],
)
def test_vectorised_and_incremental_agree_on_10000_random_bars(vector, make, inputs) -> None:  # type: ignore[no-untyped-def]
    high, low, close = _bars()
    expected = np.vstack(vector(high, low, close))
    state = make()
    got = []
    for i in range(close.shape[0]):
        args = (high[i], low[i], close[i]) if inputs == "hlc" else (close[i],)
        result = state.update(*args)
        got.append(result if isinstance(result, tuple) else (result,))
    got_arr = np.array(got).T
    assert np.array_equal(np.isnan(got_arr), np.isnan(expected))
    mask = ~np.isnan(expected)
    assert np.max(np.abs(got_arr[mask] - expected[mask])) <= 1e-9
