"""Orders: every decision is logged durably *before* it is acted on, then placed or cancelled at the
broker. An order the log holds is re-sent under the same ``client_order_id`` after a crash, which the
broker refuses as a duplicate, so a decision can never place two orders."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from tape.actors.alpaca.order_status import BrokerRejected, BrokerUnreachable
from tape.actors.live_session.contracts import UNSENT, Broker
from tape.actors.live_session.crypto import watched
from tape.actors.live_session.guard import guard_exit
from tape.actors.live_session.health import ANSWERED, QUIET, BrokerHealth, unanswered
from tape.actors.live_session.trailing import move_stop, trail_terms
from tape.events.portfolio_state import Order, evolve_each
from tape.events.schema import Event, OrderCancelled, OrderRejected, OrderSubmitted, StopMoved

if TYPE_CHECKING:
    from tape.actors.live_session.session import LiveSession


def commit(live: LiveSession, events: list[Event], ts: int) -> tuple[list[Event], BrokerHealth]:
    """Log ``events`` durably, then act on them at the broker; returns them and what followed."""
    if not events:
        return [], QUIET
    live.append(events)
    out, health = list(events), QUIET
    for event in events:
        if isinstance(event, OrderSubmitted):
            if live.guard.guards(event):
                order = live.session.state.market_orders.get(event.symbol)
                if order is None or order.client_order_id != event.client_order_id:
                    continue  # settled by an earlier event of this batch
                sendable, settled, guarded = guard_exit(live, order, ts)
                committed, more = commit(live, settled, ts)
                out, health = out + committed, health.joined(guarded).joined(more)
                if not sendable:
                    continue
            sent, placed = send(live, event)
            committed, more = commit(live, sent, ts)
            out, health = out + committed, health.joined(placed).joined(more)
        elif isinstance(event, OrderCancelled) and event.reason not in UNSENT:
            if event.client_order_id not in live.guard.watched:
                cancel(live.broker, event.client_order_id)
        elif isinstance(event, StopMoved):
            guard = live.session.state.protective.get(event.symbol)
            if guard is not None and guard.client_order_id == event.client_order_id:
                move_stop(live.broker, guard)
    return out, health


def send(live: LiveSession, order: OrderSubmitted) -> tuple[list[Event], BrokerHealth]:
    """Place ``order``; a refusal becomes an OrderRejected event (applied to the portfolio), no answer
    the ``broker`` outage alert (logged by the caller). An order the session watches is not sent."""
    if watched(order):
        return [], QUIET
    try:
        risk = live.config.risk
        percent, amount = trail_terms(risk)
        placed = live.broker.submit(
            order, time_in_force=risk.option("tif", "day"), trail_percent=percent, trail_price=amount
        )
    except BrokerUnreachable as exc:
        # Placed or not, nobody knows yet: the order stays working and the next cycle's lookup finds
        # it, or re-sends it under the same id (fills.py).
        return live.outages.judge("broker", order.ts, failure=str(exc)), unanswered(str(exc))
    except BrokerRejected as exc:
        return evolve_each(live.session.state, [_rejected(order, str(exc))]), ANSWERED
    health = BrokerHealth(answered=True, placed=1)
    if placed.refused:
        return evolve_each(live.session.state, [_rejected(order, "rejected by the broker")]), health
    return [], health


def _rejected(order: OrderSubmitted, reason: str) -> OrderRejected:
    return OrderRejected(
        ts=order.ts, client_order_id=order.client_order_id, symbol=order.symbol, reason=reason
    )


def cancel(broker: Broker, client_order_id: str) -> None:
    """Ask the broker to cancel; a refusal means it already filled or is gone: the next cycle sees which."""
    with contextlib.suppress(BrokerRejected):
        broker.cancel(client_order_id)


def recancel(live: LiveSession) -> None:
    """Cancels the log decided in the cycle a crash interrupted may never have reached the broker: send
    them again, before the working orders (an exit's sell is refused while the cancelled protective
    order still holds the shares). Cancelling an order that is already gone is a no-op."""
    for client_order_id in live.cancels_in_flight:
        if client_order_id not in live.guard.watched:
            cancel(live.broker, client_order_id)
    live.cancels_in_flight = []


def resend_working_orders(live: LiveSession, ts: int) -> tuple[list[Event], BrokerHealth]:
    """Orders the log says are working: make sure the broker has them (a crash may have come between
    the log and the broker). A duplicate id answers the existing order, so nothing is placed twice.
    The events returned are for the caller to log (with the rest of its batch)."""
    out: list[Event] = []
    health = QUIET
    state = live.session.state
    for order in [*state.market_orders.values(), *state.protective.values()]:
        sendable, settled, guarded = guard_exit(live, order, ts)
        out, health = out + settled, health.joined(guarded)
        if not sendable:
            continue
        sent, placed = send(live, as_submitted(order, ts))
        out, health = out + sent, health.joined(placed)
        if not sent:  # the broker holds it: an ATR trail's stop moved before a crash is moved there now
            move_stop(live.broker, order)
    return out, health


def as_submitted(order: Order, ts: int) -> OrderSubmitted:
    """The submission of a working order, to send it again under its logged id."""
    limit: float | None
    stop: float | None
    if order.reason == "entry" and order.order_type in ("limit", "stop", "stop_limit"):  # working entry
        kind, limit, stop = order.order_type, order.limit or None, order.stop or None
    elif order.order_type == "trailing_stop":  # a stock's native trailing stop
        kind, limit, stop = "trailing_stop", None, order.stop or None
    elif order.reason == "protective" and order.order_type == "stop":  # a stock's ATR trail, as logged
        kind, limit, stop = "stop", None, order.stop or None
    elif order.order_type == "stop_limit":  # a pair's protective stop: its limit bounds the stop's fill
        kind, limit, stop = "stop_limit", order.limit, order.stop
    elif order.reason == "protective":  # a stock's OCO: the limit is its take-profit
        kind = "oco"
        limit = order.target if order.target != float("inf") else None
        stop = order.stop or None
    else:
        kind, limit, stop = "market", None, None
    return OrderSubmitted(
        ts=ts,
        client_order_id=order.client_order_id,
        intent_id=order.intent_id,
        symbol=order.symbol,
        side=order.side,  # type: ignore[arg-type]
        qty=order.qty,
        order_type=kind,  # type: ignore[arg-type]
        limit_price=limit,
        stop_price=stop,
        reason=order.reason,
        strategy=order.strategy,
    )
