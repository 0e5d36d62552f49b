"""The cost model, risk sizing and the position-manager rules, pinned with hand-computed numbers."""

from __future__ import annotations

import pytest

from tape.events.costs import CostModel, cents, notional_cents
from tape.events.entry_rules import (
    ENTRY_RULES,
    EntryCase,
    daily_loss,
    first_block,
    position_slots,
    size_entry,
)
from tape.events.errors import ConfigError
from tape.events.risk import MarketContext, RiskConfig, protective_exit, protective_prices, size_position


def test_cents_round_half_away_from_zero() -> None:
    assert cents(1.234) == 123
    assert cents(1.235) == 124
    assert cents(0.005) == 1
    assert cents(-0.005) == -1
    assert cents(-2.5) == -250


def test_notional_is_counted_in_whole_cents() -> None:
    assert notional_cents(100, 3.985859) == 39859


def test_market_orders_pay_slippage_against_the_trader() -> None:
    cost = CostModel(slippage_bps=5)
    assert cost.market_price("buy", 100.0) == pytest.approx(100.05)
    assert cost.market_price("sell", 100.0) == pytest.approx(99.95)


def test_default_costs_are_five_bps_and_two_fifty_an_order() -> None:
    cost = CostModel()
    assert (cost.slippage_bps, cost.commission, cost.commission_cents) == (5.0, 2.5, 250)


def test_costs_can_be_zeroed() -> None:
    cost = CostModel(slippage_bps=0, commission=0)
    assert cost.market_price("buy", 10.0) == 10.0 and cost.commission_cents == 0


@pytest.mark.parametrize("kwargs", [{"slippage_bps": -1}, {"commission": -0.01}])
def test_negative_costs_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        CostModel(**kwargs)


def test_risk_defaults_are_the_plans() -> None:
    risk = RiskConfig()
    assert (risk.risk_per_trade_pct, risk.stop_loss_pct, risk.take_profit_pct) == (2.0, 5.0, 10.0)
    assert (risk.max_position_size, risk.max_positions, risk.max_daily_loss_pct) == (100.0, 3, 5.0)


def test_sizing_risks_two_percent_between_entry_and_stop() -> None:
    # 2 % of 100,000 = 2,000 at risk; the stop is 5 % of 50 = 2.50 a share -> 800 shares.
    sizing = size_position(100_000, 100_000, 50.0, RiskConfig(max_position_size=0), 50.0, 0.0)
    assert sizing.qty == 800
    assert sizing.checks["risk_amount"] == 2000.0 and sizing.checks["per_share_risk"] == 2.5


def test_sizing_is_capped_by_max_position_size() -> None:
    assert size_position(100_000, 100_000, 50.0, RiskConfig(), 50.0, 0.0).qty == 100


def test_sizing_without_a_stop_risks_the_whole_price() -> None:
    sizing = size_position(
        100_000, 100_000, 50.0, RiskConfig(stop_loss_pct=0, max_position_size=0), 50.0, 0.0
    )
    assert sizing.qty == 40


def test_sizing_is_capped_by_cash_after_slippage_and_commission() -> None:
    # (1,000 - 2.50 commission) / 50.025 a share = 19.94 -> 19 shares.
    sizing = size_position(100_000, 1_000, 50.0, RiskConfig(max_position_size=0), 50.025, 2.5)
    assert sizing.qty == 19


def test_fixed_quantity_replaces_risk_sizing() -> None:
    assert size_position(100_000, 100_000, 50.0, RiskConfig(fixed_qty=7), 50.0, 0.0).qty == 7


def _entry(
    risk: RiskConfig, *, open_positions: int = 0, pending: int = 0, daily_pnl_pct: float = 0.0
) -> EntryCase:
    sized = size_entry(
        risk,
        CostModel(),
        symbol="AAA",
        price=10.0,
        equity=100_000.0,
        cash=100_000.0,
        context=MarketContext(),
        size_factor=1.0,
    )
    return EntryCase(risk, "AAA", sized, MarketContext(), (), open_positions, pending, daily_pnl_pct, False)


def test_no_new_position_when_every_slot_is_taken() -> None:
    full = _entry(RiskConfig(max_positions=3), open_positions=2, pending=1)
    assert first_block(full) == ("max_positions", "3 of 3 position slots in use")
    assert first_block(_entry(RiskConfig(max_positions=3), open_positions=2)) is None


def test_no_new_position_after_the_daily_loss_limit() -> None:
    rule, _ = first_block(_entry(RiskConfig(max_daily_loss_pct=5), daily_pnl_pct=-5.0)) or ("", "")
    assert rule == "daily_loss"
    assert first_block(_entry(RiskConfig(max_daily_loss_pct=5), daily_pnl_pct=-4.99)) is None
    assert first_block(_entry(RiskConfig(max_daily_loss_pct=0), daily_pnl_pct=-50.0)) is None


def test_entry_rules_are_asked_in_order_and_the_first_block_is_recorded() -> None:
    both = _entry(RiskConfig(max_positions=1, max_daily_loss_pct=5), open_positions=1, daily_pnl_pct=-9.0)
    assert first_block(both)[0] == "max_positions"  # type: ignore[index]
    assert ENTRY_RULES.index(position_slots) < ENTRY_RULES.index(daily_loss)


def test_stop_and_target_prices_from_the_entry() -> None:
    assert protective_prices(100.0, RiskConfig()) == pytest.approx((95.0, 110.0))
    assert protective_prices(100.0, RiskConfig(stop_loss_pct=0, take_profit_pct=0)) == (0.0, 0.0)


def test_a_gap_through_the_stop_fills_at_the_open() -> None:
    assert protective_exit(95.0, 110.0, open=90.0, high=92.0, low=89.0) == ("stop_loss", 90.0)


def test_a_gap_over_the_target_fills_at_the_open() -> None:
    assert protective_exit(95.0, 110.0, open=112.0, high=115.0, low=111.0) == ("take_profit", 112.0)


def test_a_bar_touching_both_levels_takes_the_stop_first() -> None:
    assert protective_exit(95.0, 110.0, open=100.0, high=111.0, low=94.0) == ("stop_loss", 95.0)


def test_a_touched_target_fills_at_the_target() -> None:
    assert protective_exit(95.0, 110.0, open=100.0, high=110.5, low=99.0) == ("take_profit", 110.0)


def test_a_bar_inside_both_levels_triggers_nothing() -> None:
    assert protective_exit(95.0, 110.0, open=100.0, high=109.0, low=96.0) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"risk_per_trade_pct": 0},
        {"stop_loss_pct": 100},
        {"take_profit_pct": -1},
        {"max_positions": 0},
        {"max_daily_loss_pct": 101},
        {"fixed_qty": -1},
    ],
)
def test_impossible_risk_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        RiskConfig(**kwargs)
