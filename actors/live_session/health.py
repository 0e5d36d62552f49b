"""A session's health: what the broker did in a cycle (a value each step returns up), the outage
alerts it calls for, the trade-update stream alert and the monitor's alerts."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from tape.actors.live_session.contracts import Broker
from tape.events.bars import session_days
from tape.events.costs import qty_tolerance
from tape.events.monitor import OutageRule, SessionMonitor, decide_outage, evolve_outages
from tape.events.portfolio_state import PortfolioState
from tape.events.schema import Alert, Event, Reconciled
from tape.events.session import TradingSession


class BrokerHealth(NamedTuple):
    """What the broker did for some step of a cycle: whether any request answered, and the failures
    of requests that got no answer. A cycle adds its steps' values up (:meth:`joined`) and judges
    the ``broker`` outage once, so the alert does not flap within one cycle."""

    answered: bool = False
    errors: tuple[str, ...] = ()
    placed: int = 0  # orders the broker took (for `tape status`)

    def joined(self, other: BrokerHealth) -> BrokerHealth:
        """Both steps together."""
        return BrokerHealth(
            self.answered or other.answered, self.errors + other.errors, self.placed + other.placed
        )


QUIET = BrokerHealth()  # nothing asked of the broker
ANSWERED = BrokerHealth(answered=True)


def unanswered(failure: str) -> BrokerHealth:
    """A request that got no answer."""
    return BrokerHealth(errors=(failure,))


class Outages:
    """The ``feed``/``broker``/``market_data`` alerts standing, folded from the log (events/monitor.py)."""

    def __init__(self) -> None:
        self.standing: frozenset[str] = frozenset()

    def fold(self, event: Event) -> None:
        """Fold one logged event."""
        self.standing = evolve_outages(self.standing, event)

    def judge(self, rule: OutageRule, ts: int, *, failure: str | None, answered: bool = True) -> list[Event]:
        """The alert (or its clearance) an outcome calls for, given what was raised before; folded at
        once, so a second failure in the same batch finds the first one's alert."""
        alerts = decide_outage(self.standing, rule, ts, failure=failure, answered=answered)
        for alert in alerts:
            self.fold(alert)
        return list(alerts)


def trade_updates_alert(broker: Broker, ts: int) -> list[Event]:
    """The ``trade_updates`` alert when the trade-update stream is down (refused, unreachable or
    dropped), else nothing. The caller says it once: trading goes on by polling, which only collects
    fills a cycle later, so saying it every cycle would be noise. Not a ``broker`` alert: the broker
    still answers, and the broker outage rule would clear it while the stream stays down."""
    why = broker.trade_updates_trouble()
    if not why:
        return []
    message = f"the trade-update stream is unavailable ({why}); polling only"
    return [Alert(ts=ts, rule="trade_updates", severity="warning", message=message)]


def monitor_alerts(
    monitor: SessionMonitor,
    session: TradingSession,
    written: list[Event],
    ts: int,
    bars: list | None,
    *,
    day_start: float | None = None,
    marked: bool = False,
) -> list[Event]:
    """The monitor's alerts after a timestamp (``written``: what it logged) or after a cycle (``bars``:
    what the feed reported, None when it failed, so a stalled symbol is judged only when it answered)."""
    return list(
        monitor.after_timestamp(
            written,
            ts=ts,
            day=str(int(session_days(np.array([ts], dtype=np.int64))[0])),
            equity=session.equity,
            peak=session.peak,
            day_start_equity=session.state.day_start_equity if day_start is None else day_start,
            reported=None if bars is None else {b.symbol for b in bars},
            marked=marked,
        )
    )


def reconciliation(broker: Broker, symbols: list[str], state: PortfolioState, ts: int) -> Reconciled:
    """The folded positions compared with the broker's, and what differs."""
    held = broker.positions()
    # Alpaca names a pair's position without the slash (BTC/USD is held as BTCUSD).
    held = {s: held.get(s, held.get(s.replace("/", ""), 0.0)) for s in symbols}
    at_broker = {s: q for s, q in held.items() if q}
    local = {s: p.qty for s, p in state.positions.items()}
    differences = [
        f"{s}: log {local.get(s, 0.0):g}, broker {at_broker.get(s, 0.0):g}"
        for s in sorted(set(at_broker) | set(local))
        if abs(at_broker.get(s, 0.0) - local.get(s, 0.0)) > qty_tolerance(s)
    ]
    working = [*state.market_orders.values(), *state.protective.values()]
    return Reconciled(
        ts=ts,
        broker_positions=at_broker,
        local_positions=local,
        open_orders=sorted(o.client_order_id for o in working),
        differences=differences,
    )
