"""The correlation rule: a new position moving with an open one is refused (or halved), with the number."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tape.events.backtest import BacktestConfig, run_backtest
from tape.events.correlation import ReturnWindows
from tape.events.risk import RiskConfig
from tape.events.schema import RiskAccepted, RiskRejected
from tests.factories import daily_bars, random_walk_bars


def test_correlation_matches_numpy_on_common_timestamps() -> None:
    rng = np.random.default_rng(1)
    a = 100 * np.cumprod(1 + rng.normal(0, 0.01, 41))
    b = 50 * np.cumprod(1 + rng.normal(0, 0.01, 41))
    windows = ReturnWindows(40)
    for t in range(41):
        windows.update("A", t, float(a[t]))
        windows.update("B", t, float(b[t]))
    expected = np.corrcoef(a[1:] / a[:-1] - 1, b[1:] / b[:-1] - 1)[0, 1]
    assert windows.correlation("A", "B") == pytest.approx(expected, abs=1e-12)
    assert math.isnan(windows.correlation("A", "missing"))


def _twins() -> list:
    # BBB moves exactly like AAA (same returns, other price level); AAA's SMA crosses up first.
    a = random_walk_bars("AAA", 400, seed=12)
    b = daily_bars(
        "BBB", list(a.close * 2.0), open=list(a.open * 2.0), high=list(a.high * 2.0), low=list(a.low * 2.0)
    )
    return [a, b]


def test_a_position_that_moves_with_an_open_one_is_refused_with_the_number() -> None:
    risk = RiskConfig(max_correlation=0.8, correlation_window=30)
    events = run_backtest(BacktestConfig(symbols=["AAA", "BBB"], risk=risk), _twins(), run_id="t")
    rejected = [e for e in events if isinstance(e, RiskRejected) and e.rule == "correlation"]
    assert rejected
    first = rejected[0]
    other = "AAA" if first.symbol == "BBB" else "BBB"
    assert first.checks[f"corr_{other}"] == pytest.approx(1.0)
    assert "correlate 1.00" in first.message


def test_shrink_halves_the_position_instead() -> None:
    risk = RiskConfig(max_correlation=0.8, correlation_window=30, correlation_action="shrink", fixed_qty=40)
    events = run_backtest(BacktestConfig(symbols=["AAA", "BBB"], risk=risk), _twins(), run_id="t")
    shrunk = [e for e in events if isinstance(e, RiskAccepted) and "correlation_shrunk_qty" in e.checks]
    assert shrunk and all(e.qty == 20 for e in shrunk)


def test_the_rule_is_off_by_default() -> None:
    events = run_backtest(BacktestConfig(symbols=["AAA", "BBB"]), _twins(), run_id="t")
    assert not any(isinstance(e, RiskRejected) and e.rule == "correlation" for e in events)
