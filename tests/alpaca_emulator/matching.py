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
    return True


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
