"""Working entries at the broker (limit, stop and stop-limit entries): the bars each has worked and
when its time in force ends it, by the rules the simulated broker uses (events/orders.py, rule 7).

A bar counts for an entry that was working when the bar was received: one placed on an earlier bar and
not filled in the meantime (fills the broker made during a bar are collected before that bar is
received). The count is rebuilt on resume by folding the same logged bars in the same order
(resume.py), so nothing lives only in the driver's memory.
"""

from __future__ import annotations

from tape.events.portfolio import Desk
from tape.events.portfolio_state import PortfolioState
from tape.events.schema import Event
from tape.events.working_orders import decide_expiry


class WorkedBars:
    """Bars worked per working entry (by client order id), and the symbols counted this timestamp."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._now: list[str] = []

    def count(self, state: PortfolioState, symbol: str) -> None:
        """A bar of ``symbol`` was received: its working entry, if any, has worked one more bar."""
        order = state.market_orders.get(symbol)
        if order is None or order.reason != "entry" or order.order_type == "market":
            return
        self.counts[order.client_order_id] = self.counts.get(order.client_order_id, 0) + 1
        self._now.append(symbol)

    def expiries(self, state: PortfolioState, desk: Desk, *, ts: int, session_end: bool) -> list[Event]:
        """The timestamp ``ts`` is complete: the entries counted on it whose time in force has ended
        (day: at the session's end; gtc: after ``--expire-bars``), as OrderCancelled ``expired``."""
        out: list[Event] = []
        for symbol in self._now:
            order = state.market_orders.get(symbol)
            if order is None:
                continue
            worked = self.counts.get(order.client_order_id, 0)
            out += decide_expiry(state, desk, ts=ts, symbol=symbol, worked=worked, session_end=session_end)
        self._now = []
        return out

    def forget_pending(self) -> None:
        """Drop the symbols counted on a timestamp a resume folded (its expiries are in the log)."""
        self._now = []
