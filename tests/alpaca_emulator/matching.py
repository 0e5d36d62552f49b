"""When a resting order executes at a price, and how much of it: pure functions, no state."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

from .orders import Order

_HUNDRED = Decimal(100)


def update_trail(order: Order, price: Decimal) -> None:
    """Move a trailing stop's high-water mark (low-water for buys) and its stop price."""
    if order.type != "trailing_stop":
        return
    if order.hwm is None:
        order.hwm = price
    order.hwm = max(order.hwm, price) if order.side == "sell" else min(order.hwm, price)
    trail = order.trail_price if order.trail_price is not None else order.hwm * order.trail_percent / _HUNDRED
    order.stop_price = order.hwm - trail if order.side == "sell" else order.hwm + trail


def buy_stop_collar(stop: Decimal) -> Decimal:
    """The limit Alpaca gives a buy stop order when it elects: 4 % above a stop under $50, 2.5 % above
    one at or over $50 (alpaca-docs content/trading/orders.md, "Stop Order": "Alpaca converts buy stop
    orders into stop limit orders"; sell stops are not converted)."""
    return stop * (Decimal("1.04") if stop < 50 else Decimal("1.025"))


def marketable(order: Order, price: Decimal) -> bool:
    """Whether `order` executes at `price` now; arms stops as a side effect once they trigger."""
    if order.type in ("stop", "stop_limit", "trailing_stop") and not order.triggered:
        assert order.stop_price is not None
        hit = price >= order.stop_price if order.side == "buy" else price <= order.stop_price
        if not hit:
            return False
        order.triggered = True
    if order.type in ("limit", "stop_limit"):
        assert order.limit_price is not None
        return price <= order.limit_price if order.side == "buy" else price >= order.limit_price
    if order.type == "stop" and order.side == "buy":
        assert order.stop_price is not None
        return price <= buy_stop_collar(order.stop_price)
    return True


def level(order: Order, triggered_before: bool) -> Decimal | None:
    """The price a resting order executes at when the market moves *continuously* through it (within a
    bar; a gap prints past it instead, and it executes at that print): a limit at its limit, a stop or
    trailing stop at its stop, a stop-limit triggered on this move at its stop (its limit bounds it),
    one triggered earlier (a gap past its limit) at its limit. None: at the price itself."""
    if order.type == "limit" or (order.type == "stop_limit" and triggered_before):
        return order.limit_price
    if order.type == "stop" and order.side == "buy" and triggered_before:
        assert order.stop_price is not None
        return buy_stop_collar(order.stop_price)  # elected past its collar: a limit at the collar now
    if order.type in ("stop", "trailing_stop"):
        return order.stop_price
    if order.type == "stop_limit":
        assert order.stop_price is not None and order.limit_price is not None
        buy = order.side == "buy"
        return min(order.stop_price, order.limit_price) if buy else max(order.stop_price, order.limit_price)
    return None


def execution_qty(order: Order, price: Decimal, whole_shares: bool) -> Decimal:
    """How much one execution fills: everything left, or at most `partial_fraction` of the order."""
    left = order.remaining(price)
    fraction = order.partial_fraction
    if not fraction or fraction >= 1 or left <= 0:
        return left
    total = order.qty if order.qty is not None else left + order.filled_qty
    chunk = total * Decimal(str(fraction))
    if whole_shares:
        chunk = max(Decimal(1), chunk.to_integral_value(rounding=ROUND_DOWN))
    else:
        chunk = chunk.quantize(Decimal("0.000000001"), rounding=ROUND_DOWN)
    return min(left, chunk) if chunk > 0 else left
