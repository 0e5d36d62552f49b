"""The backtest loop and the portfolio deciders on hand-made bars, with hand-computed results."""

from __future__ import annotations

import numpy as np
import pytest

from tape.events import backtest
from tape.events.backtest import BacktestConfig, run_backtest
from tape.events.bars import BarSeries
from tape.events.costs import CostModel, cents
from tape.events.portfolio import Desk, decide_entry
from tape.events.portfolio_state import PortfolioState, evolve
from tape.events.report import fold_run
from tape.events.risk import RiskConfig
from tape.events.schema import (
    Alert,
    EquityMarked,
    Event,
    Fill,
    OrderSubmitted,
    PositionClosed,
    PositionOpened,
    RiskAccepted,
    RiskRejected,
    Signal,
)
from tape.events.strategies import REGISTRY
from tests.factories import daily_bars, random_walk_bars

SIDES_STRATEGIES = sorted(n for n, c in REGISTRY.items() if c.output == "sides")  # signal strategies

# SMA(2)/SMA(3) on these closes crosses up at bar 3 (close 11) and down at bar 7 (close 11).
CLOSES = [10, 10, 10, 11, 12, 13, 12, 11, 10, 10]
OPENS = [c - 0.5 for c in CLOSES]
FAST = {"short": 2, "long": 3}
NO_STOPS = RiskConfig(stop_loss_pct=0, take_profit_pct=0, fixed_qty=10)
FREE = CostModel(slippage_bps=0, commission=0)


def _run(series: list, **config: object) -> list[Event]:
    cfg = BacktestConfig(symbols=[s.symbol for s in series], params=FAST, **config)  # type: ignore[arg-type]
    return run_backtest(cfg, series, run_id="t")


def _of(events: list[Event], cls: type) -> list:
    return [e for e in events if isinstance(e, cls)]


def test_a_signal_at_the_close_fills_at_the_next_open() -> None:
    bars = daily_bars("AAA", CLOSES, open=OPENS)
    events = _run([bars], risk=NO_STOPS, cost=FREE)
    buy, sell = _of(events, Signal)
    assert (buy.side, buy.ts, buy.price) == ("buy", int(bars.ts[3]), 11.0)
    assert (sell.side, sell.ts) == ("sell", int(bars.ts[7]))
    entry, exit_ = _of(events, Fill)
    assert (entry.ts, entry.price) == (int(bars.ts[4]), 11.5)
    assert (exit_.ts, exit_.price, exit_.reason) == (int(bars.ts[8]), 9.5, "signal")


def test_slippage_and_commission_reach_the_fills_and_the_pnl() -> None:
    bars = daily_bars("AAA", CLOSES, open=OPENS)
    risk = RiskConfig(stop_loss_pct=0, take_profit_pct=0, fixed_qty=100)
    events = _run([bars], risk=risk, cost=CostModel(slippage_bps=10, commission=1.0))
    (trade,) = _of(events, PositionClosed)
    assert trade.entry_price == pytest.approx(11.5 * 1.001)
    assert trade.exit_price == pytest.approx(9.5 * 0.999)
    # 100 x 9.4905 - 100 x 11.5115 = 949.05 - 1151.15 = -202.10 gross; two $1 commissions.
    assert (trade.gross_pnl, trade.commission, trade.net_pnl) == (-202.10, 2.0, -204.10)
    assert trade.slippage == pytest.approx(100 * 0.0115 + 100 * 0.0095)
    assert trade.exit_reason == "signal"


def test_a_gap_through_the_stop_exits_at_the_open_with_slippage() -> None:
    closes = [10, 10, 10, 11, 12, 12, 12]
    opens = [10, 10, 10, 11, 12, 9, 12]  # bar 5 opens far below the 5 % stop of 12 -> 11.40
    bars = daily_bars("AAA", closes, open=opens, low=[min(o, c) for o, c in zip(opens, closes, strict=True)])
    events = _run([bars], risk=RiskConfig(fixed_qty=10), cost=CostModel(slippage_bps=10, commission=0))
    (trade,) = _of(events, PositionClosed)
    assert trade.exit_reason == "stop_loss"
    assert trade.exit_price == pytest.approx(9.0 * 0.999)


def test_a_bar_touching_stop_and_target_exits_at_the_stop() -> None:
    closes = [10, 10, 10, 11, 12, 12, 12]
    opens = [10, 10, 10, 11, 12, 12, 12]
    highs = [10, 10, 10, 11, 12, 14, 12]  # target 13.2 touched ...
    lows = [10, 10, 10, 11, 12, 11, 12]  # ... and stop 11.4 touched in the same bar
    bars = daily_bars("AAA", closes, open=opens, high=highs, low=lows)
    events = _run([bars], risk=RiskConfig(fixed_qty=10), cost=FREE)
    (trade,) = _of(events, PositionClosed)
    assert (trade.exit_reason, trade.exit_price) == ("stop_loss", pytest.approx(11.4))


def test_a_touched_target_fills_at_the_target_price() -> None:
    closes = [10, 10, 10, 11, 12, 12, 12]
    highs = [10, 10, 10, 11, 12, 13.5, 12]
    bars = daily_bars("AAA", closes, high=highs)
    events = _run([bars], risk=RiskConfig(fixed_qty=10), cost=FREE)
    (trade,) = _of(events, PositionClosed)
    assert (trade.exit_reason, trade.exit_price) == ("take_profit", pytest.approx(13.2))
    assert trade.gross_pnl == pytest.approx(12.0)


def test_the_protective_order_is_cancelled_before_a_signal_exit() -> None:
    bars = daily_bars("AAA", CLOSES, open=OPENS)
    events = _run([bars], risk=RiskConfig(fixed_qty=10, stop_loss_pct=50, take_profit_pct=50), cost=FREE)
    kinds = [type(e).__name__ for e in events if type(e).__name__ in {"OrderSubmitted", "OrderCancelled"}]
    assert kinds == ["OrderSubmitted", "OrderSubmitted", "OrderCancelled", "OrderSubmitted"]
    oco = _of(events, OrderSubmitted)[1]
    assert (oco.order_type, oco.stop_price, oco.limit_price) == ("oco", 5.75, 17.25)


def test_open_positions_are_closed_at_the_last_close() -> None:
    bars = daily_bars("AAA", [10, 10, 10, 11, 12, 13, 14])
    events = _run([bars], risk=NO_STOPS, cost=FREE)
    (trade,) = _of(events, PositionClosed)
    assert (trade.exit_reason, trade.exit_price, trade.ts) == ("end", 14.0, int(bars.ts[-1]))


def test_net_pnl_of_trades_reconciles_with_cash_to_the_cent() -> None:
    bars = [random_walk_bars(s, 600, seed=k) for k, s in enumerate(["AAA", "BBB", "CCC"])]
    events = run_backtest(BacktestConfig(symbols=["AAA", "BBB", "CCC"]), bars, run_id="t")
    report = fold_run(events)
    net_cents = sum(cents(t.pnl) for t in report.trades)
    assert net_cents == cents(report.metrics["final_equity"]) - cents(100_000.0)
    for trade in report.trades:
        assert cents(trade.gross_pnl) - cents(trade.commission) == cents(trade.pnl)


def test_symbols_in_one_run_share_the_position_slots() -> None:
    bars = [random_walk_bars(s, 400, seed=10 + k) for k, s in enumerate(["AAA", "BBB", "CCC", "DDD"])]
    events = run_backtest(
        BacktestConfig(symbols=["AAA", "BBB", "CCC", "DDD"], risk=RiskConfig(max_positions=1)),
        bars,
        run_id="t",
    )
    open_now = 0
    for event in events:
        open_now += isinstance(event, PositionOpened) - isinstance(event, PositionClosed)
        assert open_now <= 1
    assert any(isinstance(e, RiskRejected) and e.rule == "max_positions" for e in events)


def _state_with_positions(symbols: list[str]) -> PortfolioState:
    state = PortfolioState("t", 100_000.0)
    for k, symbol in enumerate(symbols):
        order = OrderSubmitted(
            ts=k, client_order_id=f"o{k}", intent_id=f"i{k}", symbol=symbol, side="buy", qty=1
        )
        fill = Fill(
            ts=k, client_order_id=f"o{k}", exec_id=f"f{k}", symbol=symbol, side="buy", qty=1, price=10.0
        )
        opened = PositionOpened(ts=k, symbol=symbol, strategy="s", qty=1, entry_price=10.0)
        for event in (order, fill, opened):
            evolve(state, event)
    return state


def test_the_fourth_position_is_rejected_with_the_default_three_slots() -> None:
    state = _state_with_positions(["AAA", "BBB", "CCC"])
    events = decide_entry(
        state, Desk(RiskConfig(), CostModel()), ts=9, day=1, symbol="DDD", strategy="s", price=10, equity=1e5
    )
    (rejected,) = _of(events, RiskRejected)
    assert rejected.rule == "max_positions"


def test_daily_loss_locks_entries_for_the_rest_of_the_session_and_alerts_once() -> None:
    state = PortfolioState("t", 100_000.0)
    desk = Desk(RiskConfig(), CostModel())
    first = decide_entry(state, desk, ts=1, day=7, symbol="AAA", strategy="s", price=10.0, equity=94_000.0)
    assert [type(e) for e in first] == [type(first[0]), RiskRejected, Alert]
    assert first[1].rule == "daily_loss" and first[1].checks["daily_pnl_pct"] == pytest.approx(-6.0)
    for event in first:
        evolve(state, event)
    # Equity recovered within the session: still locked, and no second alert.
    again = decide_entry(state, desk, ts=2, day=7, symbol="BBB", strategy="s", price=10.0, equity=99_000.0)
    assert [type(e) for e in again][1:] == [RiskRejected]
    # The next session starts from the last mark: entries open again.
    evolve(state, EquityMarked(ts=3, equity=99_000.0, cash=99_000.0, peak=100_000.0))
    later = decide_entry(state, desk, ts=4, day=8, symbol="BBB", strategy="s", price=10.0, equity=99_000.0)
    assert any(isinstance(e, RiskAccepted) for e in later)


def test_replaying_the_events_rebuilds_the_same_report() -> None:
    bars = [random_walk_bars("AAA", 500, seed=3)]
    events = run_backtest(BacktestConfig(symbols=["AAA"]), bars, run_id="t")
    assert fold_run(events) == fold_run(list(events))
    assert run_backtest(BacktestConfig(symbols=["AAA"]), bars, run_id="t") == events


@pytest.mark.parametrize("strategy", SIDES_STRATEGIES)
def test_no_decision_depends_on_a_later_bar(strategy: str) -> None:
    bars = random_walk_bars("AAA", 400, seed=5)
    config = BacktestConfig(symbols=["AAA"], strategy=strategy)
    baseline = run_backtest(config, [bars], run_id="t")
    for cut in (60, 150, 299):
        changed = random_walk_bars("AAA", 400, seed=99)
        mixed = daily_bars(
            "AAA",
            list(bars.close[: cut + 1]) + list(changed.close[cut + 1 :] * 3.0),
            open=list(bars.open[: cut + 1]) + list(changed.open[cut + 1 :] * 3.0),
            high=list(bars.high[: cut + 1]) + list(changed.high[cut + 1 :] * 3.0),
            low=list(bars.low[: cut + 1]) + list(changed.low[cut + 1 :] * 3.0),
        )
        other = run_backtest(config, [mixed], run_id="t")
        limit = int(bars.ts[cut])
        # RunStarted carries the data fingerprint, which differs by design; every decision up to the
        # cut (the fills of orders decided at the cut happen at the next open) must be identical.
        before = [e for e in baseline[1:] if e.ts <= limit and not isinstance(e, Fill | PositionClosed)]
        after = [e for e in other[1:] if e.ts <= limit and not isinstance(e, Fill | PositionClosed)]
        assert before == after, f"a decision at or before bar {cut} changed"


def _entries(events: list[Event]) -> list[RiskAccepted]:
    return [e for e in events if isinstance(e, RiskAccepted)]


def test_atr_sizing_risks_the_same_dollars_on_calm_and_wild_symbols() -> None:
    calm = random_walk_bars("CALM", 300, seed=1, vol=0.005)
    wild = random_walk_bars("WILD", 300, seed=1, vol=0.04)
    risk = RiskConfig(
        sizing="atr",
        atr_stop_multiple=2.0,
        max_position_size=0,
        max_positions=1,
        take_profit_pct=0,
        risk_per_trade_pct=0.5,
    )
    for bars in (calm, wild):
        events = run_backtest(BacktestConfig(symbols=[bars.symbol], risk=risk), [bars], run_id="t")
        for accepted in _entries(events)[:5]:
            dollars_at_risk = accepted.qty * accepted.checks["stop_distance"]
            # floor() of the share count loses at most one share's risk
            assert accepted.checks["risk_amount"] - accepted.checks["stop_distance"] <= dollars_at_risk
            assert dollars_at_risk <= accepted.checks["risk_amount"]
    calm_qty = _entries(run_backtest(BacktestConfig(symbols=["CALM"], risk=risk), [calm], run_id="t"))[0].qty
    wild_qty = _entries(run_backtest(BacktestConfig(symbols=["WILD"], risk=risk), [wild], run_id="t"))[0].qty
    assert calm_qty > 3 * wild_qty  # the calmer stock gets the bigger position


def test_the_atr_stop_sits_the_accepted_distance_below_the_fill() -> None:
    bars = random_walk_bars("AAA", 300, seed=2)
    risk = RiskConfig(sizing="atr", atr_stop_multiple=1.5, max_position_size=0)
    events = run_backtest(BacktestConfig(symbols=["AAA"], risk=risk), [bars], run_id="t")
    accepted, opened = _entries(events)[0], _of(events, PositionOpened)[0]
    assert opened.stop_price == pytest.approx(opened.entry_price - accepted.checks["stop_distance"])


def test_thin_symbols_are_rejected_with_their_volume() -> None:
    bars = random_walk_bars("THIN", 300, seed=3)  # 1,000 shares a day
    events = run_backtest(
        BacktestConfig(symbols=["THIN"], risk=RiskConfig(min_avg_volume=5_000)), [bars], run_id="t"
    )
    rejected = [e for e in events if isinstance(e, RiskRejected)]
    assert rejected and {e.rule for e in rejected} == {"liquidity"}
    assert rejected[0].checks["avg_volume"] == 1000.0 and rejected[0].checks["min_avg_volume"] == 5000.0
    assert "below 5,000" in rejected[0].message
    assert not _of(events, PositionOpened)


def test_orders_are_capped_at_a_share_of_average_volume() -> None:
    bars = random_walk_bars("AAA", 300, seed=4)
    risk = RiskConfig(max_volume_pct=2.0, max_position_size=0)
    events = run_backtest(BacktestConfig(symbols=["AAA"], risk=risk), [bars], run_id="t")
    accepted = _entries(events)
    assert accepted and all(e.qty <= 20 and e.checks["liquidity_cap_qty"] == 20.0 for e in accepted)


def _gappy(symbol: str, n: int, *, seed: int, keep_every: int) -> BarSeries:
    """A random walk with every ``keep_every``-th bar missing (symbols then report at different times)."""
    full = random_walk_bars(symbol, n, seed=seed)
    keep = np.arange(n) % keep_every != keep_every - 1
    columns = (full.ts, full.open, full.high, full.low, full.close, full.volume)
    return BarSeries.from_arrays(symbol, full.timeframe, *(c[keep] for c in columns))


@pytest.mark.parametrize("strategy", ["sma_cross", "rsi", "atr_breakout"])
def test_quiet_bars_passed_over_in_bulk_or_one_by_one_give_the_same_events(
    monkeypatch: pytest.MonkeyPatch, strategy: str
) -> None:
    series = [
        _gappy("AAA", 1_500, seed=5, keep_every=7),
        _gappy("BBB", 1_200, seed=6, keep_every=5).take(100, 1_000),  # starts late, ends early
        random_walk_bars("CCC", 1_500, seed=7),
    ]
    risk = RiskConfig(stop_loss_pct=3, take_profit_pct=4, max_positions=2, max_correlation=0.9)
    config = BacktestConfig(symbols=["AAA", "BBB", "CCC"], strategy=strategy, params={}, risk=risk)
    runs = []
    for bulk_from in (1, 10**9):  # numpy for every stretch / a plain loop for every stretch
        monkeypatch.setattr(backtest, "BULK_MIN", bulk_from)
        runs.append(run_backtest(config, series, run_id="t"))
    assert runs[0] == runs[1]
    assert "stop_loss" in {e.exit_reason for e in _of(runs[0], PositionClosed)}  # stops were checked


@pytest.mark.parametrize("direction", ["long", "both"])
def test_bars_read_through_small_windows_give_the_same_events_as_through_one(
    monkeypatch: pytest.MonkeyPatch, direction: str
) -> None:
    # The loop reads its bars one window (PROGRESS_EVERY bars) at a time; a reversal's entry is priced
    # at its signal bar's close even when a window boundary lies between the signal and the fill.
    series = [_gappy("AAA", 1_500, seed=5, keep_every=7), random_walk_bars("BBB", 1_500, seed=7)]
    risk = RiskConfig(stop_loss_pct=3, take_profit_pct=4, max_positions=2, direction=direction, shortable="*")
    config = BacktestConfig(symbols=["AAA", "BBB"], strategy="sma_cross", params={}, risk=risk)
    runs = []
    for window in (1, 7, 10**9):
        monkeypatch.setattr(backtest, "PROGRESS_EVERY", window)
        runs.append(run_backtest(config, series, run_id="t"))
    assert runs[0] == runs[1] == runs[2]
    assert len(_of(runs[0], PositionClosed)) > 10
