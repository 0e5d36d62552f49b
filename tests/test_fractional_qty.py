"""Crypto pairs are sized in fractions of a coin (rounded down to a quantity increment, 0.0001 unless
--qty-increment says otherwise); stocks keep whole shares, and configs that do not set the increment
encode as before."""

from __future__ import annotations

import json
import math
from pathlib import Path

import msgspec
import numpy as np
import pytest

from tape.events.backtest import BacktestConfig, run_backtest
from tape.events.costs import CostModel, cents, notional_cents
from tape.events.errors import ConfigError
from tape.events.portfolio import Desk, decide_entry
from tape.events.portfolio_state import PortfolioState
from tape.events.report import fold_run
from tape.events.risk import MarketContext, RiskConfig, floor_to, size_position
from tape.events.schema import Fill, PositionClosed, RiskAccepted, RiskRejected, RunStarted
from tape.store.log import EventLog
from tests.conftest import TapeRunner, assert_clean_failure
from tests.factories import daily_bars


def _decimals(qty: float) -> int:
    """Places after the point of ``qty`` as it prints (and as JSON sends it)."""
    text = repr(qty)
    return len(text.split(".")[1]) if "." in text and "e" not in text else 99


def test_a_quantity_is_rounded_down_in_decimal_steps_so_0_0013_stays_0_0013() -> None:
    assert math.floor(0.0013 / 1e-4) == 12  # the float trap: 12.999999999999998 steps
    assert floor_to(0.0013, 1e-4) == 0.0013
    assert floor_to(0.0123, 1e-4) == 0.0123
    assert repr(floor_to(0.012399999, 1e-4)) == "0.0123"
    assert repr(floor_to(0.66666666, 1e-4)) == "0.6666"


def test_a_whole_share_step_floors_exactly_as_math_floor() -> None:
    quantities = [266.67, 2.9999999999999996, 0.4, -3.5]
    assert [floor_to(q) for q in quantities] == [float(math.floor(q)) for q in quantities]


def test_nothing_to_size_is_zero_coins() -> None:
    assert [floor_to(q, 1e-4) for q in (0.0, -0.5, math.nan, 0.00009)] == [0.0] * 4


def test_a_pair_is_sized_in_coin_steps_and_a_stock_in_whole_shares() -> None:
    risk = RiskConfig(max_position_size=0)
    # 2 % of 100,000 = 2,000 at risk; a 5 % stop on 61,234.57 is 3,061.73 a coin -> 0.6532 BTC.
    pair = size_position(
        100_000, 100_000, 61_234.57, risk, 61_234.57, 0.0, increment=risk.increment("BTC/USD")
    )
    assert pair.qty == 0.6532 and repr(pair.qty) == "0.6532"
    stock = size_position(100_000, 100_000, 150.0, risk, 150.0, 0.0, increment=risk.increment("AAPL"))
    assert stock.qty == 266  # 2,000 / 7.50


def test_the_increment_is_0_0001_for_pairs_unless_set_and_always_one_share_for_stocks() -> None:
    assert (RiskConfig().increment("BTC/USD"), RiskConfig().increment("AAPL")) == (1e-4, 1.0)
    given = RiskConfig(qty_increment=0.001)
    assert (given.increment("ETH/USD"), given.increment("MSFT")) == (0.001, 1.0)


def test_cash_for_a_fraction_of_a_coin_buys_that_fraction() -> None:
    # (1,000 - 0 commission) / 60,030 a coin = 0.016658... -> 0.0166 BTC.
    sizing = size_position(100_000, 1_000, 60_000.0, RiskConfig(), 60_030.0, 0.0, increment=1e-4)
    assert sizing.qty == 0.0166 and sizing.checks["affordable_qty"] == 0.0166


def test_a_fixed_pair_quantity_off_the_step_is_rounded_down_to_it() -> None:
    sizing = size_position(
        100_000, 100_000, 60_000.0, RiskConfig(fixed_qty=0.12345), 60_000.0, 0.0, increment=1e-4
    )
    assert repr(sizing.qty) == "0.1234"


def test_a_config_without_an_increment_encodes_as_before_and_one_with_it_reads_back() -> None:
    assert "qty_increment" not in msgspec.to_builtins(RiskConfig())
    config = BacktestConfig(symbols=["BTC/USD"], risk=RiskConfig(qty_increment=0.001))
    recorded = msgspec.to_builtins(config)
    assert recorded["risk"]["qty_increment"] == 0.001
    assert msgspec.convert(recorded, BacktestConfig) == config


@pytest.mark.parametrize("increment", [0.0, -0.001, 2.0])
def test_an_increment_outside_zero_to_one_is_refused(increment: float) -> None:
    with pytest.raises(ConfigError, match="--qty-increment must be in"):
        RiskConfig(qty_increment=increment)


def _entry(symbol: str, price: float, cash: float, **risk: float | str) -> list[object]:
    state = PortfolioState("r", cash)
    desk = Desk(RiskConfig(**risk), CostModel(slippage_bps=0, commission=0))  # type: ignore[arg-type]
    context = MarketContext(correlations=(("ETH/USD", 0.99),) if "max_correlation" in risk else ())
    return decide_entry(
        state, desk, ts=1, day=1, symbol=symbol, strategy="s", price=price, equity=cash, context=context
    )


def test_a_pair_entry_the_cash_cannot_cover_names_the_coin_step() -> None:
    (rejected,) = [e for e in _entry("BTC/USD", 60_000.0, 5.0) if isinstance(e, RiskRejected)]
    assert (rejected.rule, rejected.message) == ("cash", "not enough cash for 0.0001 BTC")


def test_halving_a_pair_for_correlation_halves_it_in_coin_steps() -> None:
    events = _entry("BTC/USD", 60_000.0, 100_000.0, max_correlation=0.5, correlation_action="shrink")
    (accepted,) = [e for e in events if isinstance(e, RiskAccepted)]
    assert accepted.qty == 0.3333  # 0.6666 (2,000 / 3,000) halved, rounded down
    assert accepted.checks["qty_increment"] == 1e-4


BTC_CLOSES = [60_000, 60_000, 60_000, 61_234.57, 62_345.67, 63_456.78, 62_000, 61_000, 60_000, 60_000]


def test_a_pair_backtest_with_default_sizing_trades_fractions_that_reconcile_to_the_cent() -> None:
    config = BacktestConfig(symbols=["BTC/USD"], params={"short": 2, "long": 3}, cash=10_000)
    bars = daily_bars("BTC/USD", BTC_CLOSES, open=[c - 50.5 for c in BTC_CLOSES])
    events = run_backtest(config, [bars], run_id="frac")
    fills = [e for e in events if isinstance(e, Fill)]
    assert len(fills) == 2 and 0 < fills[0].qty < 1 and _decimals(fills[0].qty) <= 4
    (trade,) = [e for e in events if isinstance(e, PositionClosed)]
    moved = sum(
        (-1 if f.side == "buy" else 1) * notional_cents(f.qty, f.price) - cents(f.commission) for f in fills
    )
    assert cents(trade.net_pnl) == moved
    assert cents(trade.gross_pnl) - cents(trade.commission) == cents(trade.net_pnl)
    report = fold_run(events)
    assert cents(report.metrics["final_equity"]) - cents(10_000) == moved


def test_a_stock_backtest_with_default_sizing_buys_whole_shares() -> None:
    closes = [10.0, 10, 10, 11, 12, 13, 12, 11, 10, 10]
    config = BacktestConfig(symbols=["AAA"], params={"short": 2, "long": 3}, cash=1_000)
    fills = [e for e in run_backtest(config, [daily_bars("AAA", closes)], run_id="s") if isinstance(e, Fill)]
    assert fills and all(f.qty == int(f.qty) > 0 for f in fills)


def _btc_csv(tmp_path: Path) -> Path:
    """A synthetic BTC/USD daily CSV: 60 days of drift around 60,000 with two rallies (SMA crosses)."""
    days = np.arange(60)
    closes = 60_000 + 3_000 * np.sin(days / 6.0) + 17.31 * days
    lines = ["Date,Open,High,Low,Close,Volume"]
    for k, close in enumerate(closes):
        day = np.datetime64("2024-01-01") + k
        open_ = closes[k - 1] if k else close
        high, low = max(open_, close) * 1.004, min(open_, close) * 0.996
        lines.append(f"{day},{open_:.2f},{high:.2f},{low:.2f},{close:.2f},12.5")
    path = tmp_path / "btc.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_tape_backtest_of_imported_btc_bars_trades_with_default_sizing(
    tape: TapeRunner, tmp_path: Path, log_path: Path
) -> None:
    imported = tape("data", "import", str(_btc_csv(tmp_path)), "--symbol", "BTC/USD")
    assert imported.returncode == 0, imported.stderr
    result = tape("backtest", "BTC/USD", "--json", "--no-files")
    assert result.returncode == 0, result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    with EventLog.open(log_path) as log:
        events = [r.event for r in log.read(stream_prefix=f"run/{run_id}")]
    fills = [e for e in events if isinstance(e, Fill)]
    assert fills and all(0 < f.qty < 1 for f in fills)
    assert all(_decimals(f.qty) <= 4 for f in fills if f.side == "buy")
    (started,) = [e for e in events if isinstance(e, RunStarted)]
    assert "qty_increment" not in started.config["risk"]


def test_tape_backtest_qty_increment_reaches_the_sizing_and_the_run_config(
    tape: TapeRunner, tmp_path: Path, log_path: Path
) -> None:
    assert tape("data", "import", str(_btc_csv(tmp_path)), "--symbol", "BTC/USD").returncode == 0
    result = tape("backtest", "BTC/USD", "--qty-increment", "0.01", "--json", "--no-files")
    assert result.returncode == 0, result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    with EventLog.open(log_path) as log:
        events = [r.event for r in log.read(stream_prefix=f"run/{run_id}")]
    (started,) = [e for e in events if isinstance(e, RunStarted)]
    assert started.config["risk"]["qty_increment"] == 0.01
    entries = [e for e in events if isinstance(e, RiskAccepted)]
    assert entries and all(_decimals(e.qty) <= 2 for e in entries)


def test_a_bad_qty_increment_option_is_one_clear_message(tape: TapeRunner) -> None:
    assert_clean_failure(
        tape("backtest", "BTC/USD", "--qty-increment", "0"), "--qty-increment must be in (0, 1]"
    )
