"""Orders as the emulated broker keeps them, and their JSON form (Alpaca's order entity)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from .timeutil import format_ts

OPEN_STATUSES = frozenset(
    {
        "new",
        "partially_filled",
        "accepted",
        "pending_new",
        "held",
        "pending_cancel",
        "pending_replace",
        "accepted_for_bidding",
        "calculated",
        "stopped",
        "suspended",
        "done_for_day",
    }
)
#: Open statuses of an order that does not execute: not routed yet (`accepted`, `pending_new`), a leg
#: waiting for its group (`held`, unless armed), or done for the day (no executions until the next one).
#: `pending_cancel` is not here: the venue may still fill an order until its cancel completes.
IDLE_STATUSES = frozenset({"accepted", "pending_new", "held", "done_for_day"})


def num(value: Decimal | None) -> str | None:
    """Alpaca's decimal strings: `"10"`, `"187.25"`, never exponents."""
    if value is None:
        return None
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class Order:
    symbol: str
    asset_id: str
    asset_class: str
    side: str  # buy | sell
    type: str  # market | limit | stop | stop_limit | trailing_stop
    time_in_force: str
    qty: Decimal | None
    notional: Decimal | None
    created_at: datetime
    client_order_id: str = field(default_factory=new_id)
    id: str = field(default_factory=new_id)
    order_class: str = "simple"
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_price: Decimal | None = None
    trail_percent: Decimal | None = None
    hwm: Decimal | None = None
    extended_hours: bool = False
    position_intent: str | None = None
    status: str = "accepted"
    filled_qty: Decimal = Decimal(0)
    filled_cost: Decimal = Decimal(0)  # sum of qty * price over fills, for the average price
    updated_at: datetime | None = None
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    failed_at: datetime | None = None
    expired_at: datetime | None = None
    replaced_at: datetime | None = None
    replaced_by: str | None = None  # id of the order that replaced this one
    replaces: str | None = None  # id of the order this one replaced
    legs: list[Order] = field(default_factory=list)
    parent_id: str | None = None
    triggered: bool = False  # a stop / stop_limit / trailing_stop whose stop has been reached
    #: A `held` leg Alpaca watches: the stop-loss of an OCO, or of a bracket whose entry filled. Alpaca
    #: reports it `held` (one order of the group is open at a time) and sends it when its stop is hit.
    armed: bool = False
    #: The status a `pending_cancel` order had before the cancel request (its cancel has not completed).
    status_before_cancel: str | None = None
    #: Largest share of the order quantity one execution may fill (None: fill all at once).
    partial_fraction: float | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def working(self) -> bool:
        """Whether the order may execute on a price now: open, routed and not a dormant leg. An order whose
        cancel is pending works as it did before the request, until the cancel completes."""
        if not self.is_open:
            return False
        status = self.status
        if status == "pending_cancel" and self.status_before_cancel:
            status = self.status_before_cancel
        return self.armed if status == "held" else status not in IDLE_STATUSES

    @property
    def filled_avg_price(self) -> Decimal | None:
        return (self.filled_cost / self.filled_qty) if self.filled_qty else None

    def remaining(self, price: Decimal | None = None) -> Decimal:
        """Quantity still to fill (for a notional order: at `price`)."""
        if self.qty is not None:
            return self.qty - self.filled_qty
        if price is None or self.notional is None:
            return Decimal(0)
        left = self.notional - self.filled_cost
        return (left / price).quantize(Decimal("0.000000001")) if left > 0 else Decimal(0)

    def wire(self, with_legs: bool = True) -> dict[str, Any]:
        """Alpaca's JSON of the order; ``with_legs`` rolls a multi-leg order's legs up under ``legs``
        (Alpaca does so only when asked, ``nested=true``; otherwise ``legs`` is null)."""

        def ts(value: datetime | None) -> str | None:
            return format_ts(value) if value else None

        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": ts(self.created_at),
            "updated_at": ts(self.updated_at or self.created_at),
            "submitted_at": ts(self.created_at),
            "filled_at": ts(self.filled_at),
            "expired_at": ts(self.expired_at),
            "canceled_at": ts(self.canceled_at),
            "failed_at": ts(self.failed_at),
            "replaced_at": ts(self.replaced_at),
            "replaced_by": self.replaced_by,
            "replaces": self.replaces,
            "asset_id": self.asset_id,
            "symbol": self.symbol,
            "asset_class": self.asset_class,
            "notional": num(self.notional),
            "qty": num(self.qty),
            "filled_qty": num(self.filled_qty),
            "filled_avg_price": num(self.filled_avg_price.quantize(Decimal("0.000001")))
            if self.filled_avg_price is not None
            else None,
            "order_class": self.order_class,
            "order_type": self.type,
            "type": self.type,
            "side": self.side,
            "position_intent": self.position_intent,
            "time_in_force": self.time_in_force,
            "limit_price": num(self.limit_price),
            "stop_price": num(self.stop_price),
            "status": self.status,
            "extended_hours": self.extended_hours,
            "legs": [leg.wire() for leg in self.legs] if with_legs and self.legs else None,
            "trail_percent": num(self.trail_percent),
            "trail_price": num(self.trail_price),
            "hwm": num(self.hwm),
            "subtag": None,
            "source": None,
            "expires_at": None,
        }
