"""Percentage fees: Alpaca's crypto fee taken from the credited asset (live), the same fee charged in
dollars by backtests of pairs, and configs that do not use them encoding exactly as before."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import msgspec
import pytest

from tape.events.backtest import BacktestConfig, run_backtest, run_id_for
from tape.events.costs import CostModel, cents, credited_fee, notional_cents
from tape.events.errors import ConfigError
from tape.events.risk import RiskConfig
from tape.events.schema import Fill, PositionClosed, RiskAccepted, RunStarted
from tape.store.log import EventLog
from tests.conftest import TapeRunner, assert_clean_failure
from tests.factories import daily_bars

# Computed on main before the fee fields existed (commit c19d4c3).
STOCKS = BacktestConfig(symbols=["AAPL", "MSFT"])
PAIR = BacktestConfig(
    symbols=["BTC/USD"],
    timeframe="5Min",
    cost=CostModel(slippage_bps=3, commission=0),
    risk=RiskConfig(fixed_qty=0.5),
)


def test_configs_that_set_no_fee_encode_and_hash_as_before_the_fee_fields() -> None:
    assert hashlib.sha256(msgspec.msgpack.encode(STOCKS)).hexdigest() == (
        "e8158820c32f1bd1dc529d44062317fb1be2daa679c63387db4ed03cb27eb1c4"
    )
    assert hashlib.sha256(msgspec.msgpack.encode(PAIR)).hexdigest() == (
        "c8823af70b0a1febf827a6461c1f97c922092c0b6d5630f32fa78526a58e9a8b"
    )
    assert (run_id_for(STOCKS, [], "v1"), run_id_for(PAIR, [], "v1")) == (
        "87707e547d337b24",
        "d4d05bca61bcebc7",
    )
    assert msgspec.to_builtins(STOCKS)["cost"] == {"slippage_bps": 5.0, "commission": 2.5}


def test_a_config_that_sets_a_fee_records_it_and_reads_back() -> None:
    config = msgspec.structs.replace(STOCKS, cost=CostModel(fee_bps=10, stop_band_bps=50))
    recorded = msgspec.to_builtins(config)
    assert recorded["cost"] == {"slippage_bps": 5.0, "commission": 2.5, "fee_bps": 10, "stop_band_bps": 50}
    assert msgspec.convert(recorded, BacktestConfig) == config
    assert run_id_for(config, [], "v1") != run_id_for(STOCKS, [], "v1")


def test_an_unset_fee_is_nothing_for_stocks_and_alpacas_tier_one_for_pairs() -> None:
    cost = CostModel()
    assert (cost.taker_bps("AAPL"), cost.maker_bps("AAPL")) == (0.0, 0.0)
    assert (cost.taker_bps("BTC/USD"), cost.maker_bps("BTC/USD")) == (25.0, 15.0)
    assert cost.stop_band == pytest.approx(0.01)
    given = CostModel(fee_bps=10, maker_fee_bps=2)
    assert (given.taker_bps("AAPL"), given.maker_bps("ETH/USD")) == (10, 2)


@pytest.mark.parametrize("field", ["fee_bps", "maker_fee_bps", "stop_band_bps"])
def test_a_negative_fee_or_band_is_refused(field: str) -> None:
    with pytest.raises(ConfigError, match="between 0 and 10000 bps"):
        CostModel(**{field: -1})


def test_a_crypto_buy_holds_the_coins_net_of_the_fee_and_pays_the_full_dollars() -> None:
    qty, commission = credited_fee("buy", 0.5, 61_234.57, 25)
    assert qty == 0.49875  # 0.5 less 0.00125 BTC
    # The broker takes 30,617.29 dollars (0.5 x 61,234.57, to the cent); the log books the coins held
    # at the fill price and the rest as the fee, so its cash moves by exactly those cents.
    assert notional_cents(qty, 61_234.57) + cents(commission) == 3_061_729
    assert commission == pytest.approx(0.00125 * 61_234.57, abs=0.01)


def test_a_crypto_sell_pays_the_fee_from_the_dollars() -> None:
    qty, commission = credited_fee("sell", 1.995, 41_234.57, 25)
    assert (qty, commission) == (1.995, 205.66)  # 0.25 % of 82,262.97, to the cent
    assert notional_cents(qty, 41_234.57) - cents(commission) == 8_226_297 - 20_566


def test_a_crypto_fill_without_a_fee_keeps_its_quantity() -> None:
    assert credited_fee("buy", 3.0, 0.1, 0) == (3.0, 0.0)


PAIR_CLOSES = [30_000, 30_000, 30_000, 31_000, 32_000, 33_000, 32_000, 31_000, 30_000, 30_000]


def test_a_pair_backtest_pays_alpacas_taker_fee_on_every_fill_and_reconciles_to_the_cent() -> None:
    config = BacktestConfig(
        symbols=["BTC/USD"],
        params={"short": 2, "long": 3},
        cost=CostModel(slippage_bps=10, commission=1.0),
        risk=RiskConfig(stop_loss_pct=0, take_profit_pct=0, fixed_qty=2),
    )
    bars = daily_bars("BTC/USD", PAIR_CLOSES, open=[c - 100 for c in PAIR_CLOSES])
    events = run_backtest(config, [bars], run_id="pair")
    fills = [e for e in events if isinstance(e, Fill)]
    assert len(fills) == 2
    for fill in fills:
        assert fill.commission == (100 + cents(fill.qty * fill.price * 0.0025)) / 100
    (trade,) = [e for e in events if isinstance(e, PositionClosed)]
    assert trade.commission == pytest.approx(sum(f.commission for f in fills))
    spent = sum(
        (-1 if f.side == "buy" else 1) * notional_cents(f.qty, f.price) - cents(f.commission) for f in fills
    )
    assert cents(trade.net_pnl) == spent


def test_a_stock_backtest_pays_only_the_flat_commission() -> None:
    bars = daily_bars("AAA", [10, 10, 10, 11, 12, 13, 12, 11, 10, 10])
    config = BacktestConfig(
        symbols=["AAA"],
        params={"short": 2, "long": 3},
        cost=CostModel(commission=1.0),
        risk=RiskConfig(stop_loss_pct=0, take_profit_pct=0, fixed_qty=10),
    )
    fills = [e for e in run_backtest(config, [bars], run_id="s") if isinstance(e, Fill)]
    assert [f.commission for f in fills] == [1.0, 1.0]


def test_the_fee_makes_a_pair_entry_smaller_when_cash_is_short() -> None:
    bars = daily_bars("ETH/USD", PAIR_CLOSES)
    risk = RiskConfig(stop_loss_pct=0, take_profit_pct=0, max_position_size=0, risk_per_trade_pct=100)
    free = BacktestConfig(
        symbols=["ETH/USD"],
        params={"short": 2, "long": 3},
        cash=62_000,
        cost=CostModel(slippage_bps=0, commission=0, fee_bps=0),
        risk=risk,
    )
    paid = msgspec.structs.replace(free, cost=CostModel(slippage_bps=0, commission=0))
    sized = [
        next(e.qty for e in run_backtest(c, [bars], run_id="e") if isinstance(e, RiskAccepted))
        for c in (free, paid)
    ]
    assert sized == [2.0, 1.995]  # two at 31,000 cost 62,000: with 0.25 % on top, 1.995 fit


def test_tape_backtest_fee_bps_reaches_the_fills_and_the_run_config(tape: TapeRunner, log_path: Path) -> None:
    window = ["--start", "2004-01-01", "--end", "2005-12-31", "--json"]
    plain = tape("backtest", "AAPL", *window)
    charged = tape("backtest", "AAPL", *window, "--fee-bps", "10")
    assert plain.returncode == 0 and charged.returncode == 0, plain.stderr + charged.stderr
    runs = [json.loads(r.stdout)["run_id"] for r in (plain, charged)]
    with EventLog.open(log_path) as log:
        configs = [
            next(
                r.event.config
                for r in log.read(stream_prefix=f"run/{run}")
                if isinstance(r.event, RunStarted)
            )
            for run in runs
        ]
        fills = [
            [r.event for r in log.read(stream_prefix=f"run/{run}") if isinstance(r.event, Fill)]
            for run in runs
        ]
    assert "fee_bps" not in configs[0]["cost"] and configs[1]["cost"]["fee_bps"] == 10
    assert {f.commission for f in fills[0]} == {2.5}
    assert all(f.commission == (250 + cents(f.qty * f.price * 0.001)) / 100 for f in fills[1])


def test_a_negative_fee_option_is_one_clear_message(tape: TapeRunner) -> None:
    assert_clean_failure(tape("backtest", "AAPL", "--fee-bps", "-5"), "--fee-bps must be between 0 and 10000")
