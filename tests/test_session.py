"""Contract: a session fed bar by bar through the incremental strategies produces exactly the events
of the vectorised backtest loop, for every strategy and for a multi-symbol portfolio."""

from __future__ import annotations

import pytest

from tape.events.backtest import BacktestConfig, run_backtest
from tape.events.risk import RiskConfig
from tape.events.schema import Event
from tape.events.session import TradingSession, feed_order
from tape.events.strategies import REGISTRY, make_strategy
from tests.factories import random_walk_bars

SIDES_STRATEGIES = sorted(n for n, c in REGISTRY.items() if c.output == "sides")  # signal strategies


def replay_session(config: BacktestConfig, series: list, run_id: str) -> list[Event]:
    """Drive a TradingSession the way the live engine does, with the incremental strategies."""
    strategy = make_strategy(config.strategy, config.params)
    live = {s.symbol: strategy.live() for s in series}
    by_symbol = {s.symbol: s for s in series}
    session = TradingSession(config, run_id, strategy.name)
    out: list[Event] = []
    for step in feed_order(series):
        bars = by_symbol[step.symbol]
        i = step.row
        o, h, lo, c, v = (
            float(bars.open[i]),
            float(bars.high[i]),
            float(bars.low[i]),
            float(bars.close[i]),
            float(bars.volume[i]),
        )
        out += session.open_bar(step.symbol, step.ts, o, h, lo)
        out += session.observe(step.ts, step.symbol, h, lo, c, v)
        side, values = live[step.symbol].on_bar(o, h, lo, c, v)
        out += session.close_bar(
            step.symbol, step.ts, step.day, c, side, values, strategy.describe(side, values) if side else ""
        )
        if step.last_of_symbol:
            out += session.close_out(step.symbol, step.ts, c)
        if step.group_end:
            out += session.end_of_timestamp(step.ts, session_end=step.session_end)
    return out


@pytest.mark.parametrize("name", SIDES_STRATEGIES)
def test_bar_by_bar_session_equals_the_backtest(name: str) -> None:
    series = [random_walk_bars(s, 700, seed=30 + k) for k, s in enumerate(["AAA", "BBB", "CCC"])]
    config = BacktestConfig(symbols=["AAA", "BBB", "CCC"], strategy=name, risk=RiskConfig(max_positions=2))
    expected = run_backtest(config, series, run_id="r")[1:-1]  # without RunStarted / RunEnded
    assert replay_session(config, series, "r") == expected


def test_atr_sizing_and_liquidity_rules_decide_the_same_bar_by_bar() -> None:
    series = [random_walk_bars(s, 700, seed=50 + k) for k, s in enumerate(["AAA", "BBB"])]
    risk = RiskConfig(sizing="atr", atr_stop_multiple=1.5, max_volume_pct=5.0, max_position_size=0)
    config = BacktestConfig(symbols=["AAA", "BBB"], risk=risk)
    expected = run_backtest(config, series, run_id="r")[1:-1]
    assert replay_session(config, series, "r") == expected


def test_the_regime_filter_decides_the_same_bar_by_bar() -> None:
    series = [random_walk_bars(s, 700, seed=70 + k) for k, s in enumerate(["AAA", "BBB"])]
    risk = RiskConfig(regimes="trending", volatile_atr_pct=3.0)
    config = BacktestConfig(symbols=["AAA", "BBB"], risk=risk)
    expected = run_backtest(config, series, run_id="r")[1:-1]
    assert any(type(e).__name__ == "RegimeChanged" for e in expected)
    assert replay_session(config, series, "r") == expected


def test_the_correlation_rule_decides_the_same_bar_by_bar() -> None:
    base = random_walk_bars("AAA", 700, seed=90)
    twin = random_walk_bars("BBB", 700, seed=91)
    risk = RiskConfig(
        max_correlation=0.2, correlation_window=30, correlation_action="shrink", max_position_size=0
    )
    config = BacktestConfig(symbols=["AAA", "BBB"], risk=risk)
    expected = run_backtest(config, [base, twin], run_id="r")[1:-1]
    assert replay_session(config, [base, twin], "r") == expected


@pytest.mark.parametrize("direction", ["short", "both"])
def test_shorts_and_stop_and_reverse_decide_the_same_bar_by_bar(direction: str) -> None:
    series = [random_walk_bars(s, 700, seed=110 + k) for k, s in enumerate(["AAA", "BBB"])]
    risk = RiskConfig(direction=direction, shortable="AAA,BBB", borrow_fee_pct=3.0)
    config = BacktestConfig(symbols=["AAA", "BBB"], risk=risk)
    expected = run_backtest(config, series, run_id="r")[1:-1]
    kinds = {type(e).__name__ for e in expected}
    assert {"BorrowFeeCharged", "PositionClosed"} <= kinds
    assert any(type(e).__name__ == "PositionOpened" and e.qty < 0 for e in expected)
    assert replay_session(config, series, "r") == expected


@pytest.mark.parametrize(
    "orders",
    [
        {"entry_order": "limit", "entry_offset_pct": 1.0},
        {"entry_order": "stop", "tif": "gtc", "expire_bars": 3},
        {"entry_order": "stop_limit", "entry_offset_pct": 0.5, "tif": "gtc", "limit_fill": "touch"},
        {"trail_pct": 3.0, "take_profit_pct": 0.0},
        {"trail_atr": 2.0, "time_exit_bars": 10},
    ],
    ids=["limit-day", "stop-gtc-expiry", "stop-limit", "trail-pct", "trail-atr-time-exit"],
)
def test_order_types_decide_the_same_bar_by_bar(orders: dict) -> None:
    series = [random_walk_bars(s, 500, seed=130 + k) for k, s in enumerate(["AAA", "BBB"])]
    risk = RiskConfig(direction="both", shortable="AAA,BBB", **orders)
    config = BacktestConfig(symbols=["AAA", "BBB"], risk=risk)
    expected = run_backtest(config, series, run_id="r")[1:-1]
    assert any(type(e).__name__ == "PositionClosed" for e in expected)
    assert replay_session(config, series, "r") == expected
