"""Trailing stops of stocks at Alpaca: a native ``trailing_stop`` order (percent or price amount), or a
``stop`` order at the model's k x ATR level that the session replaces as the level moves, takes the
protective OCO's place.

Alpaca holds a trailing stop only as a standalone order (no OCO or bracket leg: docs "Orders", trailing
stop), so the position's take-profit, if any, is watched by the session on completed bars, as a crypto
pair's is (crypto.py). The session still logs the model's level as it moves (``stop_moved`` on
completed closes, events/orders.py rule 6); Alpaca moves its own stop on every trade from its
high-water mark (``hwm``), so its stop can sit above the logged level after a bar whose high ran past
its close: docs/long-short-and-orders.md ("Live") names the difference. An ATR trail has no native
form; its stop rests where the log says and moves only on ``stop_moved`` (a replace: PATCH
/v2/orders/{id}), so it fills where the backtest's does.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import msgspec

from tape.actors.alpaca.feed import LiveBar
from tape.actors.alpaca.order_status import BrokerOrder, BrokerRejected
from tape.actors.schedule import is_crypto
from tape.events.orders import order_price
from tape.events.portfolio import decide_exit
from tape.events.portfolio_state import Order, PortfolioState
from tape.events.risk import RiskConfig
from tape.events.schema import Event, OrderSubmitted

if TYPE_CHECKING:
    from tape.actors.live_session.contracts import Broker


def native_trail(risk: RiskConfig) -> bool:
    """Whether a stock's trailing stop rests at the broker as Alpaca's own (percent or price amount)."""
    return risk.option("trail_pct", 0.0) > 0 or risk.option("trail_amount", 0.0) > 0


def trail_terms(risk: RiskConfig) -> tuple[float | None, float | None]:
    """(trail_percent, trail_price) as Alpaca takes them: exactly one is set when trailing natively."""
    pct, amount = risk.option("trail_pct", 0.0), risk.option("trail_amount", 0.0)
    if pct > 0:
        return pct, None
    return None, (amount if amount > 0 else None)


def replaced_trail(risk: RiskConfig) -> bool:
    """Whether a stock's trailing stop is the model's own level (k x ATR), resting at the broker as a
    plain ``stop`` order that the session replaces whenever the level moves (Alpaca trails by a
    percent or a price amount only)."""
    return not native_trail(risk) and risk.option("trail_atr", 0.0) > 0


def trail_at_broker(events: list[Event], risk: RiskConfig) -> list[Event]:
    """A stock's protective OCO becomes a ``trailing_stop`` when the run trails natively, a ``stop`` at
    the model's level when it trails by ATR (:func:`replaced_trail`): its stop is the level at entry
    (as logged; Alpaca computes a native one from ``trail_percent``/``trail_price``), the take-profit
    leaves the order (see :func:`watch_target`)."""
    kind = "trailing_stop" if native_trail(risk) else "stop" if replaced_trail(risk) else ""
    if not kind:
        return events
    out: list[Event] = []
    for event in events:
        if isinstance(event, OrderSubmitted) and event.order_type == "oco" and not is_crypto(event.symbol):
            event = msgspec.structs.replace(event, order_type=kind, limit_price=None)
        out.append(event)
    return out


def move_stop(broker: Broker, order: Order) -> None:
    """The stock's replaced-trail stop at the broker is moved to ``order``'s logged level (after a
    ``stop_moved``, logged before this). A refusal or no answer leaves the old stop working; the next
    fill poll finds the difference and replaces it then (:func:`stale_stop`)."""
    if order.reason != "protective" or order.order_type != "stop":
        return
    with contextlib.suppress(BrokerRejected):
        broker.replace_stop(order.client_order_id, order.stop)


def stale_stop(order: Order, seen: BrokerOrder) -> bool:
    """Whether a working replaced-trail stop at the broker stands elsewhere than the logged level (a
    crash or a refusal came between a ``stop_moved`` and its replace)."""
    if order.reason != "protective" or order.order_type != "stop" or seen.done or seen.stop_price is None:
        return False
    return abs(seen.stop_price - order_price(order.stop)) > 1e-9


def watch_target(state: PortfolioState, bar: LiveBar) -> list[Event]:
    """A position guarded by a trailing stop at the broker (native, or a replaced stop) takes its
    profit on a completed bar that closes at or beyond its target (a long's above, a short's below):
    its trailing stop is cancelled, then the position leaves at market (decide_exit logs the cancel
    before it is sent)."""
    position = state.positions.get(bar.symbol)
    guard = state.protective.get(bar.symbol)
    if position is None or guard is None or guard.order_type not in ("trailing_stop", "stop"):
        return []
    if bar.symbol in state.market_orders or not 0 < position.target < float("inf"):
        return []
    reached = bar.close >= position.target if position.qty > 0 else bar.close <= position.target
    if not reached:
        return []
    return decide_exit(state, ts=bar.ts, symbol=bar.symbol, reason="take_profit", price=bar.close)
