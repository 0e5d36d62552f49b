"""The Alpaca emulator's limit, stop, stop-limit, trailing-stop and day orders, as Alpaca documents
them (alpaca-docs content/trading/orders.md; the assumptions are listed in actors/alpaca/broker.py),
driven through the real alpaca-py TradingClient. A bar is traded through with ``emu.play_bar``."""

from __future__ import annotations

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import (
    LimitOrderRequest,
    ReplaceOrderRequest,
    StopLimitOrderRequest,
    StopOrderRequest,
    TrailingStopOrderRequest,
)

from tests.alpaca_emulator import AlpacaEmulator

OPEN_DAY = "2024-07-08T14:00:00Z"  # Monday 10:00 New York, the session closes at 20:00Z


@pytest.fixture
def emu(alpaca_emulator: AlpacaEmulator) -> AlpacaEmulator:
    alpaca_emulator.set_time(OPEN_DAY)
    alpaca_emulator.set_price("XYZ", 100.0)
    return alpaca_emulator


@pytest.fixture
def trading(emu: AlpacaEmulator) -> TradingClient:
    return TradingClient(emu.key_id, emu.secret, url_override=emu.trading_url)


def _buy(**kw: object) -> dict[str, object]:
    return {"symbol": "XYZ", "qty": 10, "side": OrderSide.BUY, "time_in_force": TimeInForce.GTC, **kw}


def _state(emu: AlpacaEmulator, client_order_id: str) -> tuple[str, str | None]:
    order = emu.order(client_order_id)
    return order["status"], order["filled_avg_price"]


def test_a_limit_crossed_within_a_bar_fills_at_its_limit_not_at_the_low(emu, trading) -> None:
    trading.submit_order(LimitOrderRequest(**_buy(limit_price=99.5, client_order_id="l")))
    emu.play_bar("XYZ", 100.0, 100.2, 99.0, 99.8)
    assert _state(emu, "l") == ("filled", "99.5")


def test_a_limit_the_open_gaps_past_fills_at_the_open(emu, trading) -> None:
    trading.submit_order(LimitOrderRequest(**_buy(limit_price=99.5, client_order_id="l")))
    emu.play_bar("XYZ", 99.2, 99.4, 99.0, 99.3)
    assert _state(emu, "l") == ("filled", "99.2")


def test_a_stop_limit_that_gaps_past_its_limit_rests_then_fills_at_the_limit(emu, trading) -> None:
    trading.submit_order(
        StopLimitOrderRequest(**_buy(stop_price=100.5, limit_price=101.0, client_order_id="sl"))
    )
    emu.play_bar("XYZ", 101.5, 102.0, 101.2, 101.8)  # elected by the gap, never back at 101
    assert _state(emu, "sl") == ("new", None)
    emu.play_bar("XYZ", 101.4, 101.5, 100.6, 100.8)  # falls through the limit
    assert _state(emu, "sl") == ("filled", "101")


def test_a_buy_stop_gapping_past_alpacas_collar_rests_as_a_limit_at_the_collar(emu, trading) -> None:
    # Alpaca turns a buy stop at or over $50 into a stop-limit 2.5 % above its stop: 100 -> 102.50
    emu.set_price("XYZ", 99.0)
    trading.submit_order(StopOrderRequest(**_buy(stop_price=100.0, client_order_id="s")))
    emu.play_bar("XYZ", 103.0, 104.0, 102.8, 103.5)
    assert _state(emu, "s") == ("new", None)
    emu.play_bar("XYZ", 103.0, 103.0, 102.0, 102.2)
    assert _state(emu, "s") == ("filled", "102.5")


def test_a_day_order_expires_at_the_close_and_a_gtc_one_does_not(emu, trading) -> None:
    day = _buy(limit_price=90.0, time_in_force=TimeInForce.DAY, client_order_id="day")
    trading.submit_order(LimitOrderRequest(**day))
    trading.submit_order(LimitOrderRequest(**_buy(limit_price=90.0, client_order_id="gtc")))
    emu.set_time("2024-07-08T19:59:00Z")
    assert emu.order("day")["status"] == "new"
    emu.set_time("2024-07-08T20:00:00Z")
    expired = emu.order("day")
    assert (expired["status"], expired["expired_at"]) == ("expired", "2024-07-08T20:00:00Z")
    assert emu.order("gtc")["status"] == "new"
    assert trading.get_order_by_client_id("day").status.value == "expired"


def test_a_trailing_stop_moves_hwm_and_stop_price_with_the_price_and_fills_at_its_stop(emu, trading) -> None:
    emu.set_price("XYZ", 100.0)
    trading.submit_order(
        LimitOrderRequest(**_buy(limit_price=100.0, time_in_force=TimeInForce.DAY, client_order_id="in"))
    )
    trading.submit_order(
        TrailingStopOrderRequest(
            symbol="XYZ",
            qty=10,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            trail_percent=1.0,
            client_order_id="trail",
        )
    )
    order = emu.order("trail")
    assert (order["hwm"], order["stop_price"], order["trail_percent"]) == ("100", "99", "1")
    emu.play_bar("XYZ", 100.0, 102.0, 99.9, 101.5)  # the high moves the mark, the close does not
    order = emu.order("trail")
    assert (order["status"], order["hwm"], order["stop_price"]) == ("new", "102", "100.98")
    emu.play_bar("XYZ", 101.5, 101.6, 100.0, 100.2)
    assert _state(emu, "trail") == ("filled", "100.98")


def _held_stop(emu: AlpacaEmulator, trading: TradingClient) -> str:
    """10 XYZ bought at 100 and a gtc sell stop at 99 under them; returns the stop's order id."""
    trading.submit_order(LimitOrderRequest(**_buy(limit_price=100.0, client_order_id="in")))
    stop = dict(_buy(stop_price=99.0, client_order_id="stop"), side=OrderSide.SELL)
    return str(trading.submit_order(StopOrderRequest(**stop)).id)


def test_a_replaced_stop_ends_replaced_and_its_successor_works_at_the_new_price(emu, trading) -> None:
    old = _held_stop(emu, trading)
    new = trading.replace_order_by_id(old, ReplaceOrderRequest(stop_price=99.5, client_order_id="stop.1"))
    replaced = emu.order("stop")
    assert (replaced["status"], replaced["replaced_by"]) == ("replaced", str(new.id))
    successor = emu.order("stop.1")
    assert (successor["status"], successor["replaces"], successor["stop_price"]) == ("new", old, "99.5")
    assert (successor["type"], successor["qty"], successor["time_in_force"]) == ("stop", "10", "gtc")
    emu.play_bar("XYZ", 100.0, 100.1, 99.2, 99.4)  # through 99.50, not down to 99
    assert _state(emu, "stop.1") == ("filled", "99.5") and emu.positions.get("XYZ", 0) == 0


def test_an_order_that_is_no_longer_open_cannot_be_replaced(emu, trading) -> None:
    old = _held_stop(emu, trading)
    emu.play_bar("XYZ", 100.0, 100.1, 98.5, 98.8)  # the stop fills at 99
    with pytest.raises(APIError) as refused:
        trading.replace_order_by_id(old, ReplaceOrderRequest(stop_price=99.5))
    assert refused.value.status_code == 422 and "filled" in str(refused.value)
    assert [o["status"] for o in emu.orders if o["side"] == "sell"] == ["filled"]
