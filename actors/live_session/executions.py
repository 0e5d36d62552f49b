"""What a broker order executed, as the Fill the log keeps, and the exit that sells what a part fill
left: conversions shared by fill collection (fills.py) and the protective guard (guard.py)."""

from __future__ import annotations

from tape.actors.alpaca.order_status import BrokerOrder
from tape.actors.schedule import is_crypto
from tape.events.costs import CostModel, credited_fee
from tape.events.portfolio import decide_exit
from tape.events.portfolio_state import Order, PortfolioState, evolve_each
from tape.events.schema import Event, Fill


def close_the_rest(state: PortfolioState, fill: Fill, reason: str) -> list[Event]:
    """After ``fill`` (an exit, already applied: a sell of a long or a buy covering a short) closed only
    part of its position, nothing closes the rest: decide a market exit for it, for ``reason`` (applied;
    the caller logs it before it is sent, like every order, so a restart re-sends it under its logged
    id and never twice)."""
    if fill.symbol not in state.positions or fill.symbol in state.market_orders:
        return []  # the whole position closed, or an exit already works
    decided = decide_exit(state, ts=fill.ts, symbol=fill.symbol, reason=reason, price=fill.price)
    return evolve_each(state, decided)


def fill_of(order: Order, seen: BrokerOrder, ts: int, cost: CostModel) -> Fill:
    """What the broker says ``order`` executed, as the Fill the log keeps. A pair's fee is taken from
    the asset the trade credits (:func:`events.costs.credited_fee`)."""
    assert seen.filled_avg_price is not None
    qty, commission = seen.filled_qty, 0.0
    if is_crypto(order.symbol):
        maker = seen.order_type == "limit"  # a resting limit made liquidity; the rest took it
        bps = cost.maker_bps(order.symbol) if maker else cost.taker_bps(order.symbol)
        qty, commission = credited_fee(order.side, qty, seen.filled_avg_price, bps)
    return Fill(
        ts=ts,
        client_order_id=order.client_order_id,
        exec_id=f"{seen.broker_order_id}@{seen.filled_qty:g}",
        symbol=order.symbol,
        side=order.side,  # type: ignore[arg-type]
        qty=qty,
        price=seen.filled_avg_price,
        commission=commission,
        reason=_fill_reason(order, seen),
    )


def _fill_reason(order: Order, seen: BrokerOrder) -> str:
    if order.reason != "protective":
        return order.reason
    return "stop_loss" if seen.order_type in ("stop", "stop_limit", "trailing_stop") else "take_profit"
