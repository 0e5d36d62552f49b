"""The alpaca-py request for each order tape sends: its type, time in force and prices as Alpaca takes
them (actors/alpaca/ASSUMPTIONS.md says which documentation each choice follows)."""

from __future__ import annotations

from typing import Any

from tape.events.orders import order_price
from tape.events.schema import OrderSubmitted


def order_request(
    order: OrderSubmitted,
    time_in_force: str = "day",
    *,
    trail_percent: float | None = None,
    trail_price: float | None = None,
) -> Any:
    """The alpaca-py request for ``order``: a stock's protective order is an OCO or a standalone
    trailing stop (``trail_percent`` or ``trail_price``, gtc), a pair's a stop-limit; an entry is sent
    as its own type (market, limit, stop or stop-limit) with ``time_in_force``. A pair takes gtc only
    (a day entry of a pair is ended by the session at its session's end)."""
    from alpaca.trading.enums import OrderClass, OrderSide, TimeInForce
    from alpaca.trading.requests import (
        LimitOrderRequest,
        MarketOrderRequest,
        StopLimitOrderRequest,
        StopLossRequest,
        StopOrderRequest,
        TakeProfitRequest,
        TrailingStopOrderRequest,
    )

    side = OrderSide.BUY if order.side == "buy" else OrderSide.SELL
    crypto = "/" in order.symbol
    common: dict[str, Any] = {"symbol": order.symbol, "qty": order.qty, "side": side}
    common["client_order_id"] = order.client_order_id
    if order.order_type == "oco":
        return LimitOrderRequest(
            **common,
            time_in_force=TimeInForce.GTC,
            order_class=OrderClass.OCO,
            limit_price=round(order.limit_price or 0.0, 2),
            take_profit=TakeProfitRequest(limit_price=round(order.limit_price or 0.0, 2)),
            stop_loss=StopLossRequest(stop_price=round(order.stop_price or 0.0, 2)),
        )
    if order.order_type == "trailing_stop":
        return TrailingStopOrderRequest(
            **common, time_in_force=TimeInForce.GTC, trail_percent=trail_percent, trail_price=trail_price
        )
    if order.reason == "protective" and order.order_type == "stop":  # a stock's ATR trailing stop
        return StopOrderRequest(
            **common, time_in_force=TimeInForce.GTC, stop_price=order_price(order.stop_price or 0.0)
        )
    if order.reason != "entry" and order.order_type == "stop_limit":  # a pair's protective stop
        return StopLimitOrderRequest(
            **common,
            time_in_force=TimeInForce.GTC,
            stop_price=order.stop_price,  # as logged: the session rounds a pair's prices
            limit_price=order.limit_price,
        )
    if order.order_type == "market":
        tif = TimeInForce.GTC if crypto else TimeInForce.DAY  # crypto: no DAY
        return MarketOrderRequest(**common, time_in_force=tif)
    tif = TimeInForce.GTC if crypto or time_in_force == "gtc" else TimeInForce.DAY
    if order.order_type == "limit":
        return LimitOrderRequest(**common, time_in_force=tif, limit_price=order.limit_price)
    if order.order_type == "stop":
        return StopOrderRequest(**common, time_in_force=tif, stop_price=order.stop_price)
    return StopLimitOrderRequest(
        **common, time_in_force=tif, stop_price=order.stop_price, limit_price=order.limit_price
    )
