"""Crypto pairs at a broker without OCO: the stop rests at the broker as a stop-limit, the target is
watched by the session on each completed bar.

Alpaca takes no OCO for crypto, so a pair's protection is a stop-limit at the broker (it covers a crash
or a gap between cycles) and the take-profit is decided here on each completed bar. Alpaca reports no
fee on a crypto fill but takes it from the asset the trade credits; the Fill carries it (fills.py).
"""

from __future__ import annotations

import msgspec

from tape.actors.alpaca.feed import LiveBar
from tape.actors.schedule import is_crypto
from tape.events.costs import CostModel
from tape.events.portfolio import decide_exit
from tape.events.portfolio_state import PortfolioState
from tape.events.schema import Event, OrderSubmitted


def protect(events: list[Event], cost: CostModel) -> list[Event]:
    """A pair's protective order, as Alpaca can hold it: the stop becomes a stop-limit at the broker
    (limit ``cost.stop_band`` below the stop, so a fast fall still fills) and the target is left to
    :func:`watch_pair`. It is logged before it is sent like every order, and re-sent under the same id
    on restart. Without a stop, nothing rests at the broker. Stocks keep the OCO."""
    out: list[Event] = []
    for event in events:
        if isinstance(event, OrderSubmitted) and event.order_type == "oco" and is_crypto(event.symbol):
            if not event.stop_price:
                continue
            stop = pair_price(event.stop_price)
            limit = pair_price(stop * (1.0 - cost.stop_band))
            event = msgspec.structs.replace(
                event, order_type="stop_limit", stop_price=stop, limit_price=limit
            )
        out.append(event)
    return out


def watch_pair(state: PortfolioState, bar: LiveBar) -> list[Event]:
    """What a pair's OCO would have done, decided on a completed bar: a close at or above the target
    takes the profit; a close below the stop-limit's limit (a gap it cannot fill), or at or below the
    stop when the broker holds no stop-limit (it refused it), stops the position out. Either cancels
    the stop-limit, then sells what the log holds at market; the cancel is logged before it is sent,
    so a crash in between sends it again on restart before the sell is re-sent (orders.py)."""
    position = state.positions.get(bar.symbol)
    if position is None or bar.symbol in state.market_orders:
        return []
    guard = state.protective.get(bar.symbol)
    if guard is None:  # no stop at the broker (none configured, or the broker refused it)
        stopped = 0 < bar.close <= position.stop
    else:
        stopped = guard.order_type == "stop_limit" and bar.close < guard.limit
    if bar.close >= position.target:
        reason = "take_profit"
    elif stopped:
        reason = "stop_loss"
    else:
        return []
    return decide_exit(state, ts=bar.ts, symbol=bar.symbol, reason=reason, price=bar.close)


def pair_price(price: float) -> float:
    """A pair's order price as it is logged and sent: cents, or 6 decimals under a dollar (a coin at
    $0.08 rounded to cents would put its stop at or above the market)."""
    return round(price, 2 if price >= 1.0 else 6)
