"""Every short the rules refuse is a logged risk rejection naming its rule, with a message saying why
(and how to declare a symbol shortable), and no order goes out for it."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import numpy as np
import pytest

from tape.events.backtest import BacktestConfig, run_backtest
from tape.events.bars import BarSeries
from tape.events.costs import CostModel
from tape.events.errors import ConfigError
from tape.events.risk import RiskConfig
from tape.events.schema import Alert, Event, OrderSubmitted, PositionOpened, RiskRejected
from tape.events.strategies import LOADED, Strategy, install
from tests.factories import daily_bars

SPEC = "tests:Scripted"


class Scripted(Strategy):
    """Sides at given bars: SELL at ``sells``, BUY at ``buys``."""

    class Params(msgspec.Struct, frozen=True):
        sells: list[int] = []
        buys: list[int] = []

    def warmup(self) -> int:
        return 1

    def signals(self, bars: BarSeries) -> np.ndarray:
        side = np.zeros(len(bars), dtype=np.int8)
        side[self.params.sells] = -1
        side[self.params.buys] = 1
        return side


@pytest.fixture(autouse=True)
def scripted() -> Iterator[None]:
    install(SPEC, Scripted, {"kind": "test", "location": __file__, "class": "Scripted", "sha256": "0"})
    yield
    LOADED.pop(SPEC, None)


def _short(symbol: str = "XYZ", price: float = 100.0, cash: float = 100_000.0, **risk: object) -> list[Event]:
    bars = daily_bars(symbol, [price] * 6)
    rules = {"direction": "short", "shortable": "XYZ", **risk}
    config = BacktestConfig(
        symbols=[symbol],
        strategy=SPEC,
        params={"sells": [2]},
        cash=cash,
        cost=CostModel(slippage_bps=0, commission=0),
        risk=RiskConfig(**rules),  # type: ignore[arg-type]
    )
    return run_backtest(config, [bars], run_id="r")


def _refused(events: list[Event]) -> RiskRejected:
    """The one rejection of the run, after checking that nothing was sent for its intent."""
    rejected = [e for e in events if isinstance(e, RiskRejected)]
    assert len(rejected) == 1
    sent = [e for e in events if isinstance(e, OrderSubmitted)]
    assert not [e for e in sent if e.intent_id == rejected[0].intent_id]
    assert not [e for e in events if isinstance(e, PositionOpened)]
    return rejected[0]


def test_a_crypto_pair_is_never_shorted() -> None:
    refused = _refused(_short("BTC/USD", shortable="*"))
    assert refused.rule == "crypto_short"
    assert refused.message == "BTC/USD is a crypto pair: crypto cannot be sold short"


def test_a_fractional_short_is_refused() -> None:
    refused = _refused(_short(fixed_qty=2.5))
    assert refused.rule == "fractional_short"
    assert refused.message == "2.5 XYZ is fractional: short sales must be whole shares"


def test_a_symbol_not_declared_easy_to_borrow_is_refused_with_how_to_declare_it() -> None:
    refused = _refused(_short(shortable="AAPL,MSFT"))
    assert refused.rule == "not_shortable"
    assert "XYZ is not known to be easy to borrow" in refused.message
    assert "--shortable XYZ" in refused.message


def test_no_short_with_equity_under_2000_dollars() -> None:
    refused = _refused(_short(price=10.0, cash=1_999.0))
    assert refused.rule == "short_equity"
    assert refused.message == "equity 1,999.00 is under the 2,000 a margin account needs to short"


def test_a_short_beyond_buying_power_is_refused_for_margin() -> None:
    refused = _refused(_short(price=7_000.0, cash=3_000.0))  # buying power 6,000 at 50 %
    assert refused.rule == "margin"
    assert refused.message.startswith("shorting one XYZ at 7,000.00 exceeds buying power 6,000.00")
    assert refused.checks["initial_margin_pct"] == 50.0


def test_a_short_is_sized_within_buying_power() -> None:
    events = _short(price=100.0, cash=3_000.0, fixed_qty=500.0, margin_initial_pct=100.0)
    opened = [e for e in events if isinstance(e, PositionOpened)]
    assert [e.qty for e in opened] == [-30.0]  # 3,000 of equity at 100 % initial margin


def test_a_declared_short_opens_below_zero_with_its_stop_above_and_target_below() -> None:
    events = _short(stop_loss_pct=5.0, take_profit_pct=10.0, fixed_qty=10.0)
    opened = [e for e in events if isinstance(e, PositionOpened)]
    assert len(opened) == 1
    assert (opened[0].qty, opened[0].stop_price, opened[0].take_profit_price) == (-10.0, 105.0, 90.0)


def test_an_unknown_direction_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--direction must be long, short or both"):
        RiskConfig(direction="sideways")


def test_equity_under_the_maintenance_margin_raises_a_margin_call_alert_once_a_day() -> None:
    bars = daily_bars("XYZ", [100.0, 100.0, 100.0, 100.0, 150.0, 160.0, 160.0, 160.0])
    config = BacktestConfig(
        symbols=["XYZ"],
        strategy=SPEC,
        params={"sells": [2]},
        cash=10_000.0,
        cost=CostModel(slippage_bps=0, commission=0),
        risk=RiskConfig(
            direction="short", shortable="XYZ", fixed_qty=100.0, stop_loss_pct=0, borrow_fee_pct=0.0
        ),
    )
    events = run_backtest(config, [bars], run_id="r")
    calls = [e for e in events if isinstance(e, Alert) and e.rule == "margin_call"]
    # Short 100 at 100 from 10,000: at 150 equity 5,000 covers 30 % of 15,000; at 160, 4,000 < 4,800.
    # (the last bar closes the short before its session ends: no call there)
    assert [(c.value, c.threshold) for c in calls] == [(4_000.0, 4_800.0)] * 2
    assert calls[0].message == (
        "equity 4,000.00 is below the maintenance margin 4,800.00 (30 % of 16,000.00 held)"
    )


def test_a_long_buy_while_a_short_sell_entry_is_working_is_refused_as_alpaca_does() -> None:
    bars = daily_bars("XYZ", [100.0] * 8)  # the 0.5 % limit above 100 never trades
    config = BacktestConfig(
        symbols=["XYZ"],
        strategy=SPEC,
        params={"sells": [2], "buys": [4]},
        cost=CostModel(slippage_bps=0, commission=0),
        risk=RiskConfig(direction="both", shortable="XYZ", entry_order="limit", tif="gtc"),
    )
    refused = _refused(run_backtest(config, [bars], run_id="r"))
    assert refused.rule == "opposite_order_open"
    assert refused.message == "cannot open a long buy while a short sell order is open"


class ShortsBySymbol(Strategy):
    """SELL on given bars, per symbol."""

    class Params(msgspec.Struct, frozen=True):
        sells: dict[str, list[int]] = {}

    def warmup(self) -> int:
        return 1

    def signals(self, bars: BarSeries) -> np.ndarray:
        side = np.zeros(len(bars), dtype=np.int8)
        side[self.params.sells.get(bars.symbol, [])] = -1
        return side


def test_a_shorts_margin_counts_what_is_held_at_its_market_price_not_its_entry_price() -> None:
    # Short 100 XYZ at 50 (cash 15,000), XYZ rises to 75: equity 7,500, and Reg-T buying power is
    # 15,000 - 7,500 held = 7,500 (at entry prices it would be 15,000 - 5,000 = 10,000). A 100-share
    # short of ABC at 80 (8,000) is then cut to what that buys: 93 shares.
    spec = "tests:ShortsBySymbol"
    install(
        spec, ShortsBySymbol, {"kind": "test", "location": __file__, "class": "ShortsBySymbol", "sha256": "0"}
    )
    try:
        config = BacktestConfig(
            symbols=["XYZ", "ABC"],
            strategy=spec,
            params={"sells": {"XYZ": [1], "ABC": [4]}},
            cash=10_000.0,
            cost=CostModel(slippage_bps=0, commission=0),
            risk=RiskConfig(
                direction="short",
                shortable="*",
                fixed_qty=100,
                stop_loss_pct=0,
                take_profit_pct=0,
                max_daily_loss_pct=100,
            ),
        )
        xyz = daily_bars("XYZ", [50.0, 50.0, 50.0, 75.0, 75.0, 75.0, 75.0])
        events = run_backtest(config, [xyz, daily_bars("ABC", [80.0] * 7)], run_id="r")
    finally:
        LOADED.pop(spec, None)
    opened = {e.symbol: e.qty for e in events if isinstance(e, PositionOpened)}
    assert opened == {"XYZ": -100.0, "ABC": -93.0}
