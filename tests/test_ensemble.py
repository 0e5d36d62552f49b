"""The ensemble: k-of-n votes, performance weights, regime-based members, smaller bets on disagreement."""

from __future__ import annotations

import numpy as np

from tape.events.backtest import BacktestConfig, run_backtest
from tape.events.risk import RiskConfig
from tape.events.schema import RiskAccepted, Signal
from tape.events.strategies import BUY, SELL, make_strategy
from tests.factories import random_walk_bars

BARS = random_walk_bars("AAA", 3_000, seed=17)


def _member_longs(values: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    return np.vstack([values[f"long_{n}"] for n in names]).sum(axis=0)


def test_equal_votes_go_long_when_k_members_are_long() -> None:
    strategy = make_strategy("ensemble", {"members": "sma_cross,rsi,macd", "k": "2"})
    out = strategy.signals(BARS)
    longs = _member_longs(out.values, ["sma_cross", "rsi", "macd"])
    position = np.cumsum(np.where(out.side == BUY, 1, np.where(out.side == SELL, -1, 0)))
    assert set(np.unique(position)) <= {0, 1}
    assert np.array_equal(position == 1, longs >= 2)


def _time_long(side: np.ndarray) -> float:
    return float(np.mean(np.cumsum(np.where(side == BUY, 1, np.where(side == SELL, -1, 0))) > 0))


def test_a_higher_k_is_long_less_often() -> None:
    loose = make_strategy("ensemble", {"k": "1"}).signals(BARS).side
    strict = make_strategy("ensemble", {"k": "3"}).signals(BARS).side
    assert _time_long(strict) < _time_long(loose)


def test_performance_weighting_silences_losing_members() -> None:
    equal = make_strategy("ensemble", {"weighting": "equal"}).signals(BARS)
    weighted = make_strategy("ensemble", {"weighting": "performance"}).signals(BARS)
    assert not np.array_equal(equal.side, weighted.side)
    # a weighted score never exceeds the number of members voting
    assert weighted.values["score"].max() <= 4.0 + 1e-9


def test_by_regime_lets_only_suited_members_vote() -> None:
    plain = make_strategy("ensemble", {"k": "1"}).signals(BARS).side
    regime = make_strategy("ensemble", {"k": "1", "by_regime": "true"}).signals(BARS).side
    assert not np.array_equal(plain, regime)


def test_disagreement_means_a_smaller_position() -> None:
    config = BacktestConfig(
        symbols=["AAA"], strategy="ensemble", params={"k": "1"}, risk=RiskConfig(max_position_size=0)
    )
    events = run_backtest(config, [BARS], run_id="t")
    accepted = [e for e in events if isinstance(e, RiskAccepted)]
    partial = [e for e in accepted if "size_factor" in e.checks]
    assert partial
    for e in partial:
        assert e.qty <= np.floor(e.checks["wanted_qty"] * e.checks["size_factor"])


def test_every_signal_records_each_members_vote() -> None:
    events = run_backtest(BacktestConfig(symbols=["AAA"], strategy="ensemble"), [BARS], run_id="t")
    signal = next(e for e in events if isinstance(e, Signal))
    assert {"long_sma_cross", "long_rsi", "long_macd", "long_mean_reversion", "score"} <= set(signal.values)
    assert "long votes" in signal.reason


def test_vectorised_votes_equal_the_live_combiner_bit_for_bit() -> None:
    three = {"members": "sma_cross,rsi,atr_breakout", "k": "1.5"}
    for params in ({}, {"k": "1", "by_regime": "true"}, three):
        strategy = make_strategy("ensemble", params)
        out = strategy.signals(BARS)
        live = strategy.live()
        for i in range(len(BARS)):
            side, values = live.on_bar(
                float(BARS.open[i]), float(BARS.high[i]), float(BARS.low[i]), float(BARS.close[i]), 1000.0
            )
            assert side == out.side[i]
            assert all(values[name] == out.values[name][i] for name in values)
