"""What each Alpaca order status means to tape: the one mapping every Alpaca adapter uses.

Alpaca's statuses (alpaca-py ``OrderStatus``; alpaca-docs content/trading/orders.md, "Order Lifecycle")
fall into three phases for tape:

- ``working``: the order may still execute, so tape waits and never books it as ended, nor sends it
  again: ``accepted`` and ``pending_new`` (not routed yet), ``new``, ``partially_filled``, ``held`` (a
  leg of an OCO or bracket waiting its turn), ``pending_cancel`` (a cancel was asked for; the venue may
  still fill the order until it completes), ``pending_replace``, ``pending_review``,
  ``accepted_for_bidding``, ``calculated``, ``stopped`` and ``suspended``;
- ``filled``: everything executed;
- ``ended``: nothing more will execute in this session: ``canceled``, ``expired``, ``rejected``,
  ``replaced`` and ``done_for_day``.

``done_for_day`` is ended for tape although Alpaca lists it under ``status=open``: the docs say it
"will not receive further updates until the next trading day". Tape books what it filled and cancels
the rest (:func:`lingers`), so an order tape has closed its books on cannot wake up the next day.

A status tape does not know is ``working``: waiting a cycle is safe, booking an order as ended while
it may still fill is not (a second exit could be sent).

:class:`BrokerOrder` is one order as the broker reports it, read through that mapping; the errors
beside it are how a request to the broker can fail.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from tape.events.errors import TapeError

Phase = Literal["working", "filled", "ended"]

FILLED = "filled"
ENDED_STATUSES = frozenset({"canceled", "expired", "rejected", "replaced", "done_for_day"})
WORKING_STATUSES = frozenset(
    {
        "accepted",
        "pending_new",
        "new",
        "partially_filled",
        "held",
        "pending_cancel",
        "pending_replace",
        "pending_review",
        "accepted_for_bidding",
        "calculated",
        "stopped",
        "suspended",
    }
)


def phase(status: str) -> Phase:
    """The phase of an order in ``status`` (an unknown status is ``working``)."""
    if status == FILLED:
        return "filled"
    return "ended" if status in ENDED_STATUSES else "working"


def is_done(status: str) -> bool:
    """Nothing more will execute: filled, or ended by the broker."""
    return phase(status) != "working"


def is_refused(status: str) -> bool:
    """The venue refused the order (tape logs it rejected rather than cancelled)."""
    return status == "rejected"


def lingers(status: str) -> bool:
    """Done for tape, yet still alive at Alpaca (it may resume the next trading day): cancel it."""
    return status == "done_for_day"


class BrokerRejected(TapeError):
    """The broker refused an order (insufficient buying power, unknown asset, ...)."""

    exit_code = 1


class BrokerOrderNotFound(BrokerRejected):
    """The broker has no order under that client order id (it never arrived)."""


class BrokerUnreachable(TapeError):
    """No answer from the broker to an order submission: it may or may not have been placed."""

    exit_code = 1


class BrokerOrder(NamedTuple):
    """What the broker says about one of our orders."""

    broker_order_id: str
    client_order_id: str
    symbol: str
    side: str
    status: str
    qty: float
    filled_qty: float
    filled_avg_price: float | None
    order_type: str = "market"  # of the leg that filled, for an OCO: "stop" or "limit"
    stop_price: float | None = None  # where a stop order stands now

    @property
    def done(self) -> bool:
        """Nothing more will fill: filled, or ended by the broker (actors/alpaca/order_status.py)."""
        return is_done(self.status)

    @property
    def refused(self) -> bool:
        """The broker rejected the order."""
        return is_refused(self.status)

    @property
    def lingers(self) -> bool:
        """Done for tape, but the broker may resume it (``done_for_day``): it is to be cancelled."""
        return lingers(self.status)
