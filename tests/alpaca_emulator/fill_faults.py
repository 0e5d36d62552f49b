"""Injected execution faults of known size, consulted by the broker when a market order arrives:
a fill at a worse price, and a fill held until the next price (a cycle late for a session)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass
class FillFaults:
    """What the next arriving market orders suffer, in order; empty: nothing."""

    slips: list[Decimal] = field(default_factory=list)  # adverse price offsets, one per execution
    held: int = 0  # orders that wait for the next price instead of executing on arrival
    lock: threading.Lock = field(default_factory=threading.Lock)

    def price(self, order: Any, price: Decimal, *, arriving: bool) -> Decimal | None:
        """The price ``order`` executes at now, or None to leave it working until the next price."""
        if order.type != "market":
            return price
        with self.lock:
            if arriving and self.held > 0:
                self.held -= 1
                return None
            if self.slips:
                offset = self.slips.pop(0)
                return price + offset if order.side == "buy" else price - offset
        return price
