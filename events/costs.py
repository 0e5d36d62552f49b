"""The fill and cost model shared by backtests and the simulated broker.

Market orders fill at the reference price moved against us by ``slippage_bps``; every order pays a flat
``commission``. Money is counted in integer cents (see ``cents``) so P&L sums reconcile to the cent.
"""

from __future__ import annotations

import msgspec

from events.errors import ConfigError


class CostModel(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Slippage in basis points of price, commission in dollars per order. Both may be zero."""

    slippage_bps: float = 5.0
    commission: float = 2.5

    def __post_init__(self) -> None:
        if not (0.0 <= self.slippage_bps < 10_000.0):
            raise ConfigError(f"slippage must be between 0 and 10000 bps, got {self.slippage_bps}")
        if self.commission < 0:
            raise ConfigError(f"commission cannot be negative, got {self.commission}")

    @property
    def commission_cents(self) -> int:
        return cents(self.commission)

    def market_price(self, side: str, reference: float) -> float:
        """Fill price of a market order: the reference moved against the trader."""
        slip = self.slippage_bps * 1e-4
        return reference * (1.0 + slip) if side == "buy" else reference * (1.0 - slip)


def cents(dollars: float) -> int:
    """Dollars to integer cents, rounding half away from zero (explicit, tested)."""
    return int(dollars * 100.0 + (0.5 if dollars >= 0 else -0.5))


def notional_cents(qty: float, price: float) -> int:
    """Value of ``qty`` at ``price``, in cents."""
    return cents(qty * price)
