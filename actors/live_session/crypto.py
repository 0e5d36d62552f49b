"""Crypto pairs at a broker without OCO, stop or trailing orders (Alpaca takes ``market``, ``limit`` and
``stop_limit`` for pairs: docs "Crypto Orders"): what rests at the broker, what the session watches.

- A fixed stop rests at the broker as a stop-limit (it covers a crash or a gap between cycles); the
  take-profit is decided here on each completed bar.
- A trailing stop (percent, amount or k x ATR) has no form at the broker: its protective order stays
  the model's OCO, logged and *watched* by the session (never sent). Its level moves on completed bars
  as in a backtest (``stop_moved``); a completed bar whose low reaches it sells at market.
- A stop entry rests at the broker as a stop-limit, its limit ``cost.stop_band`` beyond its stop, so a
  price crossing the stop fills it at the stop as the backtest's stop does; a gap past the band leaves
  it resting as a limit where the backtest fills at the open.

Alpaca reports no fee on a crypto fill but takes it from the asset the trade credits; the Fill carries
it (fills.py). docs/long-short-and-orders.md ("Live") names every difference from the backtest.
"""

from __future__ import annotations

import msgspec

from tape.actors.alpaca.feed import LiveBar
from tape.actors.schedule import is_crypto
from tape.events.costs import CostModel
from tape.events.portfolio import decide_exit
from tape.events.portfolio_state import Order, PortfolioState
from tape.events.risk import RiskConfig
from tape.events.schema import Event, OrderSubmitted


def watched(order: Order | OrderSubmitted) -> bool:
    """Whether ``order`` is the session's own, never sent: a pair's OCO (its trailing stop and target)."""
    return order.order_type == "oco" and is_crypto(order.symbol)


def protect(events: list[Event], cost: CostModel, risk: RiskConfig) -> list[Event]:
    """A pair's protective order, as Alpaca can hold it: the stop becomes a stop-limit at the broker
    (limit ``cost.stop_band`` below the stop, so a fast fall still fills) and the target is left to
    :func:`watch_pair`. It is logged before it is sent like every order, and re-sent under the same id
    on restart. Without a stop, nothing rests at the broker. A trailing stop stays the OCO the session
    watches (:func:`watched`). Stocks keep the OCO."""
    out: list[Event] = []
    for event in events:
        if isinstance(event, OrderSubmitted) and event.order_type == "oco" and is_crypto(event.symbol):
            if risk.trailing:
                out.append(event)
                continue
            if not event.stop_price:
                continue
            stop = pair_price(event.stop_price)
            limit = pair_price(stop * (1.0 - cost.stop_band))
            event = msgspec.structs.replace(
                event, order_type="stop_limit", stop_price=stop, limit_price=limit
            )
        out.append(event)
    return out


def stop_entries(state: PortfolioState, events: list[Event], cost: CostModel) -> list[Event]:
    """A pair's stop entry (decided and applied by the core) as Alpaca can hold it: a stop-limit whose
    limit is ``cost.stop_band`` beyond the stop (above a buy's). The book is given the order as logged,
    so a restart re-sends the same stop-limit."""
    out: list[Event] = []
    for event in events:
        if (
            isinstance(event, OrderSubmitted)
            and event.reason == "entry"
            and event.order_type == "stop"
            and is_crypto(event.symbol)
            and event.stop_price
        ):
            sign = 1.0 if event.side == "buy" else -1.0
            limit = pair_price(event.stop_price * (1.0 + sign * cost.stop_band))
            event = msgspec.structs.replace(event, order_type="stop_limit", limit_price=limit)
            state.market_orders[event.symbol] = Order(event)
        out.append(event)
    return out


def watch_pair(state: PortfolioState, bar: LiveBar) -> list[Event]:
    """What a pair's OCO would have done, decided on a completed bar: a close at or above the target
    takes the profit; a close below the stop-limit's limit (a gap it cannot fill), or at or below the
    stop when the broker holds no stop-limit (it refused it), stops the position out. A watched
    trailing stop (:func:`watched`) is reached by the bar's low (stop before target, as in a
    backtest). Either cancels the protective, then sells what the log holds at market; the cancel is
    logged before it is sent, so a crash in between sends it again on restart before the sell is
    re-sent (orders.py)."""
    position = state.positions.get(bar.symbol)
    if position is None or bar.symbol in state.market_orders:
        return []
    guard = state.protective.get(bar.symbol)
    if guard is None:  # no stop at the broker (none configured, or the broker refused it)
        stopped = 0 < bar.close <= position.stop
    elif watched(guard):
        stopped = 0 < bar.low <= position.stop
    else:
        stopped = guard.order_type == "stop_limit" and bar.close < guard.limit
    if stopped:
        reason = "stop_loss"
    elif bar.close >= position.target:
        reason = "take_profit"
    else:
        return []
    return decide_exit(state, ts=bar.ts, symbol=bar.symbol, reason=reason, price=bar.close)


def pair_price(price: float) -> float:
    """A pair's order price as it is logged and sent: cents, or 6 decimals under a dollar (a coin at
    $0.08 rounded to cents would put its stop at or above the market)."""
    return round(price, 2 if price >= 1.0 else 6)
