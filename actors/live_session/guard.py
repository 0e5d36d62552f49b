"""The race between a protective order and its cancel: an exit that follows our cancel of the same
symbol's protective order goes to the broker only once the cancel is known to have won.

The protective may have filled at the broker after a cycle's fill poll and before the cancel arrived,
which the cancel's refusal does not say (orders.cancel ignores it); selling again then would sell twice.
:class:`ProtectiveGuard` folds from the log which exits are guarded; :func:`guard_exit` settles one.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from tape.actors.alpaca.order_status import (
    BrokerOrder,
    BrokerOrderNotFound,
    BrokerRejected,
    BrokerUnreachable,
)
from tape.actors.live_session.contracts import NOT_SENT, UNSENT
from tape.actors.live_session.crypto import watched
from tape.actors.live_session.executions import close_the_rest, fill_of
from tape.actors.live_session.health import ANSWERED, QUIET, BrokerHealth, unanswered
from tape.events.portfolio import decide_fill
from tape.events.portfolio_state import Order, evolve_each
from tape.events.schema import Event, OrderCancelled, OrderRejected, OrderSubmitted, PositionClosed

if TYPE_CHECKING:
    from tape.actors.live_session.contracts import Broker
    from tape.actors.live_session.session import LiveSession

CANCEL_CHECKS = 5  # reads of a cancelled protective order before its exit is sent
CANCEL_CHECK_WAIT_S = 0.2  # between two of them


class ProtectiveGuard:
    """Folded from the log: each symbol's newest protective order, and the symbols whose working exit
    follows our cancel of it (symbol -> its client order id) until that exit ends or the position
    closes; plus the cancels the broker confirmed in this process."""

    def __init__(self) -> None:
        self.protectives: dict[str, OrderSubmitted] = {}
        self.guarded: dict[str, str] = {}
        self.confirmed: set[str] = set()
        self.watched: set[str] = set()  # protectives the session watches: nothing to cancel, no race

    def track(self, event: Event) -> None:
        """Fold one logged event."""
        if isinstance(event, OrderSubmitted) and event.reason == "protective":
            self.protectives[event.symbol] = event
            if watched(event):
                self.watched.add(event.client_order_id)
            return
        if not isinstance(event, OrderCancelled | OrderRejected | PositionClosed):
            return
        guard = self.protectives.get(event.symbol)
        protective_id = guard.client_order_id if guard is not None else ""
        if isinstance(event, OrderCancelled) and event.client_order_id == protective_id:
            if event.reason not in UNSENT and protective_id not in self.watched:
                self.guarded[event.symbol] = protective_id
        elif isinstance(event, PositionClosed) or event.client_order_id != protective_id:
            self.guarded.pop(event.symbol, None)

    def guards(self, order: Order | OrderSubmitted) -> bool:
        """Whether ``order`` is an exit waiting on its protective's cancel."""
        return bool(self.guarded.get(order.symbol)) and order.reason != "protective"


def guard_exit(live: LiveSession, exit_order: Order, ts: int) -> tuple[bool, list[Event], BrokerHealth]:
    """May ``exit_order`` go to the broker? An exit that is not guarded may. A guarded one's
    protective is read back until it is done (a bounded wait):

    - cancelled with nothing filled (or never placed): the exit may be sent;
    - filled: its Fill and what the core decides from it (the position closed at the stop or the
      target), and the exit cancelled unsent;
    - filled in part: as filled, plus a new exit for the rest with the same reason, which the caller
      sends after logging it;
    - no answer (not asked again this cycle: the client has already retried), or still working after
      the wait: the exit stays working unsent, the ``broker`` alert goes out, and the next cycle asks
      again.

    Returns whether to send the exit, the events to log (applied to the portfolio) and the broker's
    health in the exchange."""
    guard = live.guard
    if not guard.guards(exit_order):
        return True, [], QUIET
    protective_id = guard.guarded[exit_order.symbol]
    if protective_id in guard.confirmed:
        return True, [], QUIET
    seen, failure, health = _read_back(live.broker, protective_id)
    if failure:
        return False, live.outages.judge("broker", ts, failure=failure), health
    if seen is None or seen.filled_qty <= 0 or seen.filled_avg_price is None:
        guard.confirmed.add(protective_id)
        return True, [], health
    return False, _settle(live, exit_order, seen, ts), health


def _read_back(broker: Broker, protective_id: str) -> tuple[BrokerOrder | None, str, BrokerHealth]:
    """The protective once done (None: it never reached the broker), or why that is not known."""
    seen: BrokerOrder | None = None
    health = QUIET
    for attempt in range(CANCEL_CHECKS):
        if attempt:
            time.sleep(CANCEL_CHECK_WAIT_S)
        try:
            seen = broker.order(protective_id)
        except BrokerOrderNotFound:  # never reached the broker: nothing of it can fill
            return None, "", ANSWERED
        except (BrokerRejected, BrokerUnreachable) as exc:
            # The read already retried with backoff inside the client: asking again now would only
            # stall the cycle (every other symbol waits) while the broker is down.
            return None, str(exc), health.joined(unanswered(str(exc)))
        health = ANSWERED
        if seen.done:
            return seen, "", health
    assert seen is not None
    failure = f"the cancel of {protective_id} is not confirmed (still {seen.status})"
    return None, failure, health.joined(unanswered(failure))


def _settle(live: LiveSession, exit_order: Order, seen: BrokerOrder, ts: int) -> list[Event]:
    """The protective filled before its cancel: its Fill and what follows, the exit cancelled unsent,
    and (filled in part) a new exit for the rest, for the reason the exit had."""
    state, symbol = live.session.state, exit_order.symbol
    logged = live.guard.protectives[symbol]
    assert logged.client_order_id == live.guard.guarded[symbol]  # a new protective needs a new position
    fill = fill_of(Order(logged), seen, ts, live.config.cost)
    not_sent = OrderCancelled(
        ts=ts, client_order_id=exit_order.client_order_id, symbol=symbol, reason=NOT_SENT
    )
    settled = evolve_each(state, [*decide_fill(state, live.session.desk, fill), not_sent])
    return settled + close_the_rest(state, fill, exit_order.reason)
