"""Working orders in the simulated broker: limit, stop and stop-limit entries against a bar, their
expiry, and trailing stops following completed bars, by the rules of events/orders.py. Pure, shared by
the backtest loop and the bar-by-bar session."""

from __future__ import annotations

import math

from tape.events.orders import Bar, Working, expires_after, fill_on, trail_after, trail_start
from tape.events.portfolio import Desk, execute_order
from tape.events.portfolio_state import PortfolioState
from tape.events.schema import Event, OrderCancelled, StopMoved


def simulate_working_fill(
    state: PortfolioState, desk: Desk, *, ts: int, symbol: str, bar: Bar, triggered: bool = False
) -> tuple[list[Event], bool]:
    """A working limit, stop or stop-limit entry in ``symbol`` against one bar (events/orders.py):
    its fill and what follows, or nothing; and whether a stop-limit has triggered (it then works as a
    limit). A stop fills as a market order (slippage on its price); a limit at its price. A buy the
    cash no longer covers is rejected, as a market buy is."""
    order = state.market_orders[symbol]
    working = Working(
        order.side,  # type: ignore[arg-type]
        order.order_type,  # type: ignore[arg-type]
        limit=order.limit or math.nan,
        stop=order.stop or math.nan,
        touch=desk.risk.option("limit_fill", "through") == "touch",
        triggered=triggered,
    )
    trigger, after = fill_on(working, bar)
    if trigger is None:
        return [], after.triggered
    price = desk.cost.market_price(order.side, trigger) if order.order_type == "stop" else trigger
    return execute_order(state, desk, ts=ts, symbol=symbol, price=price, quoted=trigger), False


def decide_expiry(
    state: PortfolioState, desk: Desk, *, ts: int, symbol: str, worked: int, session_end: bool
) -> list[Event]:
    """A working limit/stop entry left unfilled after ``worked`` bars: cancelled as expired when its
    time in force says so (day: at its session's end; gtc: after ``expire_bars``)."""
    order = state.market_orders.get(symbol)
    if order is None or order.order_type == "market" or order.reason != "entry":
        return []
    working = Working(
        order.side,  # type: ignore[arg-type]
        tif=desk.risk.option("tif", "day"),
        expire_bars=desk.risk.option("expire_bars", 0),
    )
    if not expires_after(working, worked, session_ended=session_end):
        return []
    return [OrderCancelled(ts=ts, client_order_id=order.client_order_id, symbol=symbol, reason="expired")]


def decide_trail(
    state: PortfolioState, desk: Desk, *, ts: int, symbol: str, close: float, atr: float
) -> list[Event]:
    """A completed bar of a held ``symbol`` with a trailing stop: the stop moves with the best close
    (events/orders.py, rule 6), never back; an event only when it moved."""
    position = state.positions.get(symbol)
    order = state.protective.get(symbol)
    if position is None or order is None:
        return []
    risk = desk.risk
    current = trail_start("long" if position.qty > 0 else "short", position.entry_price)._replace(
        extreme=position.extreme, level=order.stop
    )
    distance = risk.option("trail_amount", 0.0) or risk.option("trail_atr", 0.0) * atr
    moved = trail_after(current, close, pct=risk.option("trail_pct", 0.0), distance=distance)
    if (moved.level == current.level and moved.extreme == current.extreme) or not moved.level > 0:
        return []
    return [
        StopMoved(
            ts=ts,
            client_order_id=order.client_order_id,
            symbol=symbol,
            stop_price=moved.level,
            extreme=moved.extreme,
        )
    ]
