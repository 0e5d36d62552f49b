"""Fill collection: what the broker executed since the last look, as the Fill events the log keeps and
what the portfolio core decides from them (positions, the protective order after an entry, the rest of
a part filled exit), exactly as the simulated broker's fills are decided."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tape.actors.alpaca.order_status import BrokerOrder, BrokerOrderNotFound, BrokerRejected
from tape.actors.live_session.crypto import protect, watched
from tape.actors.live_session.executions import close_the_rest, fill_of
from tape.actors.live_session.guard import guard_exit
from tape.actors.live_session.health import ANSWERED, QUIET, BrokerHealth
from tape.actors.live_session.orders import as_submitted, cancel, commit, send
from tape.actors.live_session.trailing import move_stop, stale_stop, trail_at_broker
from tape.events.portfolio import decide_fill
from tape.events.portfolio_state import Order, evolve_each
from tape.events.schema import Event, OrderCancelled, OrderRejected

if TYPE_CHECKING:
    from tape.actors.live_session.session import LiveSession


def collect_fills(live: LiveSession, now_ns: int) -> tuple[list[Event], BrokerHealth]:
    """Look up every working order at the broker and log (and act on) what became of it."""
    state, out, health = live.session.state, [], QUIET
    for order in [*state.market_orders.values(), *state.protective.values()]:
        sendable, settled, guarded = guard_exit(live, order, now_ns)
        committed, sent = commit(live, settled, now_ns)
        out, health = out + committed, health.joined(guarded).joined(sent)
        if not sendable:
            continue  # its protective's cancel is not confirmed yet: never sent blind
        if watched(order):
            continue  # the session's own: nothing of it is at the broker
        events, looked = _look_up(live, order, now_ns)
        out, health = out + events, health.joined(looked)
    return out, health


def _look_up(live: LiveSession, order: Order, now_ns: int) -> tuple[list[Event], BrokerHealth]:
    """What became of one working order: still working, never arrived (sent again), ended unfilled,
    or filled (in part or whole)."""
    try:
        seen = live.broker.order(order.client_order_id)
    except BrokerOrderNotFound:  # a submission that got no answer never arrived: send it again
        resent, health = send(live, as_submitted(order, now_ns))
        committed, more = commit(live, resent, now_ns)
        return committed, ANSWERED.joined(health).joined(more)
    except BrokerRejected:
        return [], QUIET  # unreachable for now: the next cycle asks again
    if not seen.done:  # working, pending_new and pending_cancel included: wait, never re-send
        if stale_stop(order, seen):  # a stop_moved whose replace never reached the broker
            move_stop(live.broker, order)
        return [], ANSWERED
    if seen.lingers:  # done for the day: booked as ended here, so it must not resume tomorrow
        cancel(live.broker, order.client_order_id)
    state = live.session.state
    if seen.filled_qty <= 0 or seen.filled_avg_price is None:
        ended = evolve_each(state, [_ended(order, seen, now_ns)])
        committed, health = commit(live, ended, now_ns)
        return committed, ANSWERED.joined(health)
    fill = fill_of(order, seen, now_ns, live.config.cost)
    decided = decide_fill(state, live.session.desk, fill)
    config = live.config
    decided = evolve_each(state, trail_at_broker(protect(decided, config.cost, config.risk), config.risk))
    if fill.reason != "entry":  # an exit (of a long or a short) the broker ended part filled: close the rest
        decided += close_the_rest(state, fill, fill.reason)
    committed, health = commit(live, decided, now_ns)
    return committed, ANSWERED.joined(health)


def _ended(order: Order, seen: BrokerOrder, ts: int) -> Event:
    if seen.refused:
        return OrderRejected(
            ts=ts, client_order_id=order.client_order_id, symbol=order.symbol, reason="rejected by the broker"
        )
    # A working entry the broker expired (a day order at the close) ended as the simulated broker's does.
    expired = seen.status == "expired" and order.reason == "entry" and order.order_type != "market"
    return OrderCancelled(
        ts=ts,
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        reason="expired" if expired else "broker",
    )
