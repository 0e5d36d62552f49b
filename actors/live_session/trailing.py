"""Trailing stops of stocks at Alpaca: a native ``trailing_stop`` order replaces the protective OCO.

Alpaca holds a trailing stop only as a standalone order (no OCO or bracket leg: docs "Orders", trailing
stop), so the position's take-profit, if any, is watched by the session on completed bars, as a crypto
pair's is (crypto.py). The session still logs the model's level as it moves (``stop_moved`` on
completed closes, events/orders.py rule 6); Alpaca moves its own stop on every trade from its
high-water mark (``hwm``), so its stop can sit above the logged level after a bar whose high ran past
its close: docs/long-short-and-orders.md ("Live") names the difference.
"""

from __future__ import annotations

import msgspec

from tape.actors.alpaca.feed import LiveBar
from tape.actors.schedule import is_crypto
from tape.events.portfolio import decide_exit
from tape.events.portfolio_state import PortfolioState
from tape.events.risk import RiskConfig
from tape.events.schema import Event, OrderSubmitted


def native_trail(risk: RiskConfig) -> bool:
    """Whether a stock's trailing stop rests at the broker as Alpaca's own (percent or price amount)."""
    return risk.option("trail_pct", 0.0) > 0 or risk.option("trail_amount", 0.0) > 0


def trail_terms(risk: RiskConfig) -> tuple[float | None, float | None]:
    """(trail_percent, trail_price) as Alpaca takes them: exactly one is set when trailing natively."""
    pct, amount = risk.option("trail_pct", 0.0), risk.option("trail_amount", 0.0)
    if pct > 0:
        return pct, None
    return None, (amount if amount > 0 else None)


def trail_at_broker(events: list[Event], risk: RiskConfig) -> list[Event]:
    """A stock's protective OCO becomes a ``trailing_stop`` when the run trails natively: its stop is
    the level at entry (as logged; Alpaca computes its own from ``trail_percent``/``trail_price``), the
    take-profit leaves the order (see :func:`watch_target`)."""
    if not native_trail(risk):
        return events
    out: list[Event] = []
    for event in events:
        if isinstance(event, OrderSubmitted) and event.order_type == "oco" and not is_crypto(event.symbol):
            event = msgspec.structs.replace(event, order_type="trailing_stop", limit_price=None)
        out.append(event)
    return out


def watch_target(state: PortfolioState, bar: LiveBar) -> list[Event]:
    """A position guarded by a native trailing stop takes its profit on a completed bar that closes at
    or beyond its target (a long's above, a short's below): its trailing stop is cancelled, then the
    position leaves at market (decide_exit logs the cancel before it is sent)."""
    position = state.positions.get(bar.symbol)
    guard = state.protective.get(bar.symbol)
    if position is None or guard is None or guard.order_type != "trailing_stop":
        return []
    if bar.symbol in state.market_orders or not 0 < position.target < float("inf"):
        return []
    reached = bar.close >= position.target if position.qty > 0 else bar.close <= position.target
    if not reached:
        return []
    return decide_exit(state, ts=bar.ts, symbol=bar.symbol, reason="take_profit", price=bar.close)
