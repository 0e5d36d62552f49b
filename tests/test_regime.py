"""Regimes from ADX and volatility, and the entry filter built on them."""

from __future__ import annotations

import math

import numpy as np

from tape.events.backtest import BacktestConfig, run_backtest
from tape.events.regime import RANGING, TRENDING, VOLATILE, classify, regimes
from tape.events.risk import RiskConfig
from tape.events.schema import PositionOpened, RegimeChanged, RiskRejected
from tests.factories import daily_bars, random_walk_bars


def test_classification_rules() -> None:
    rules = {"trend_adx": 25.0, "volatile_atr_pct": 4.0}
    assert classify(30.0, 1.0, 100.0, **rules) == TRENDING
    assert classify(20.0, 1.0, 100.0, **rules) == RANGING
    assert classify(30.0, 5.0, 100.0, **rules) == VOLATILE  # volatility wins over trend
    assert classify(math.nan, 1.0, 100.0, **rules) == ""


def test_a_steady_climb_is_trending_and_a_flat_wiggle_is_ranging() -> None:
    n = 120
    climb = np.linspace(100, 160, n)
    found, _, _ = regimes(climb + 0.3, climb - 0.3, climb)
    assert found[-1] == TRENDING and found[0] == ""
    wiggle = 100 + 0.3 * np.sin(np.arange(n))
    found, _, _ = regimes(wiggle + 0.2, wiggle - 0.2, wiggle)
    assert found[-1] == RANGING


def test_wild_bars_are_volatile() -> None:
    bars = random_walk_bars("WILD", 200, seed=5, vol=0.08)
    found, _, pct = regimes(bars.high, bars.low, bars.close)
    assert found[-1] == VOLATILE and pct[-1] > 4.0


def test_the_filter_rejects_entries_outside_the_allowed_regimes_with_the_reason() -> None:
    bars = random_walk_bars("AAA", 800, seed=9)
    config = BacktestConfig(symbols=["AAA"], risk=RiskConfig(regimes="trending"))
    events = run_backtest(config, [bars], run_id="t")
    changes = [e for e in events if isinstance(e, RegimeChanged)]
    assert changes and all(e.previous != e.regime for e in changes)
    rejected = [e for e in events if isinstance(e, RiskRejected) and e.rule == "regime"]
    assert rejected and "entries are allowed when trending" in rejected[0].message
    # every position that did open opened while its symbol was trending
    regime_at = ""
    for event in events:
        if isinstance(event, RegimeChanged):
            regime_at = event.regime
        if type(event).__name__ == "RiskAccepted":
            assert regime_at == TRENDING


def test_without_the_filter_no_regime_events_are_logged() -> None:
    bars = daily_bars("AAA", list(np.linspace(10, 20, 100)))
    events = run_backtest(BacktestConfig(symbols=["AAA"]), [bars], run_id="t")
    assert not any(isinstance(e, RegimeChanged) for e in events)
    assert not any(isinstance(e, PositionOpened) and e.qty <= 0 for e in events)
