"""The fill and cost model shared by backtests and the simulated broker.

Market orders fill at the reference price moved against us by ``slippage_bps``; every order pays a flat
``commission`` plus, where there is one, a percentage ``fee_bps`` of the fill's notional (crypto pairs
pay Alpaca's taker fee by default, stocks nothing). Money is counted in integer cents (see ``cents``) so
P&L sums reconcile to the cent.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import msgspec
from msgspec import UNSET, UnsetType

from tape.events.errors import ConfigError

# Alpaca's crypto fees at its first volume tier, in basis points of the notional.
CRYPTO_TAKER_BPS = 25.0
CRYPTO_MAKER_BPS = 15.0
# Live crypto protection: the stop-limit's limit sits this far below its stop (room for a fast market).
CRYPTO_STOP_BAND_BPS = 100.0
# How far two quantities of one symbol may differ and still be the same: a pair's fee, rounded to 1e-9
# coins per execution, may differ by a few increments; a stock's shares only by float noise.
PAIR_QTY_TOLERANCE = 1e-8
STOCK_QTY_TOLERANCE = 1e-9


def is_pair(symbol: str) -> bool:
    """Crypto pairs are written with a slash (BTC/USD)."""
    return "/" in symbol


def qty_tolerance(symbol: str) -> float:
    """The quantity difference below which two quantities of ``symbol`` count as equal."""
    return PAIR_QTY_TOLERANCE if is_pair(symbol) else STOCK_QTY_TOLERANCE


def sells_part(symbol: str, sold: float, held: float) -> bool:
    """Whether selling ``sold`` of the ``held`` quantity of ``symbol`` leaves some of it (beyond the
    tolerance)."""
    return sold < held - qty_tolerance(symbol)


class CostModel(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Slippage in basis points of price, commission in dollars per order. Both may be zero.

    The fields after ``commission`` default to UNSET, which msgspec leaves out of the encoded config: a
    config that does not set them encodes without them, so its run id and RunStarted config do not
    depend on whether these fields exist.
    """

    slippage_bps: float = 5.0
    commission: float = 2.5
    fee_bps: float | UnsetType = UNSET  # % of each fill's notional; unset: 0 stocks, 25 crypto pairs
    maker_fee_bps: float | UnsetType = UNSET  # live pairs, a resting limit's fill; unset: 15
    stop_band_bps: float | UnsetType = UNSET  # live pairs, stop-limit's limit below its stop; unset: 100

    def __post_init__(self) -> None:
        if not (0.0 <= self.slippage_bps < 10_000.0):
            raise ConfigError(f"slippage must be between 0 and 10000 bps, got {self.slippage_bps}")
        if not (0 <= self.commission <= 1e6):
            raise ConfigError(
                f"commission must be between 0 and 1000000 ($ per order), got {self.commission}"
            )
        for name, option in (
            ("fee_bps", "--fee-bps"),
            ("maker_fee_bps", "--maker-fee-bps"),
            ("stop_band_bps", "--stop-band-bps"),
        ):
            value = getattr(self, name)
            if value is not UNSET and not (0.0 <= value < 10_000.0):
                raise ConfigError(f"{option} must be between 0 and 10000 bps, got {value:g}")

    @property
    def commission_cents(self) -> int:
        return cents(self.commission)

    def market_price(self, side: str, reference: float) -> float:
        """Fill price of a market order: the reference moved against the trader."""
        slip = self.slippage_bps * 1e-4
        return reference * (1.0 + slip) if side == "buy" else reference * (1.0 - slip)

    def taker_bps(self, symbol: str) -> float:
        """The percentage fee (bps) a fill in ``symbol`` pays when it takes liquidity (every fill of a
        backtest does): ``fee_bps`` when set, else Alpaca's taker fee for pairs and none for stocks."""
        if self.fee_bps is not UNSET:
            return self.fee_bps
        return CRYPTO_TAKER_BPS if is_pair(symbol) else 0.0

    def maker_bps(self, symbol: str) -> float:
        """The fee (bps) of a fill that made liquidity (a resting limit): ``maker_fee_bps`` when set,
        else Alpaca's maker fee for pairs and none for stocks."""
        if self.maker_fee_bps is not UNSET:
            return self.maker_fee_bps
        return CRYPTO_MAKER_BPS if is_pair(symbol) else 0.0

    @property
    def stop_band(self) -> float:
        """How far below its stop a live pair's protective stop-limit sets its limit, as a fraction."""
        return (CRYPTO_STOP_BAND_BPS if self.stop_band_bps is UNSET else self.stop_band_bps) * 1e-4

    def fill_commission(self, symbol: str, qty: float, price: float) -> float:
        """What one simulated fill pays, in dollars: the flat commission plus the taker fee on its
        notional, each rounded to the cent (so the cash moves by whole cents)."""
        rate = self.taker_bps(symbol)
        if not rate:
            return self.commission
        return (self.commission_cents + cents(qty * price * rate * 1e-4)) / 100.0


def cents(dollars: float) -> int:
    """Dollars to integer cents, rounding half away from zero (explicit, tested)."""
    return int(dollars * 100.0 + (0.5 if dollars >= 0 else -0.5))


def notional_cents(qty: float, price: float) -> int:
    """Value of ``qty`` at ``price``, in cents."""
    return cents(qty * price)


def part_cents(total_cents: int, part_qty: float, whole_qty: float) -> int:
    """The share of ``total_cents`` that ``part_qty`` of ``whole_qty`` carries, rounded to the cent half
    away from zero (as :func:`cents`). A position closed in parts allocates its entry cost with this; the
    last part takes what is left, so the parts sum to the whole exactly."""
    share = total_cents * part_qty / whole_qty
    return int(share + (0.5 if share >= 0 else -0.5))


_CENT = Decimal("0.01")
_COIN = Decimal("0.000000001")  # Alpaca's smallest crypto quantity increment


def credited_fee(side: str, qty: float, price: float, bps: float) -> tuple[float, float]:
    """A crypto fill whose fee the broker took from what the trade credited, as the log books it:
    ``(qty, commission)`` for its Fill event.

    Alpaca reports no fee on a crypto fill: a buy of ``qty`` coins leaves ``qty`` less the fee in coins
    (rounded half up to the 1e-9 increment) and costs ``qty * price`` dollars; a sell credits the
    proceeds less the fee in dollars (rounded half up to the cent). Derived from the fill alone
    (no balance polling), the Fill's ``qty`` is what the position changes by and its ``commission``
    is the fee in dollars, fixed to the cent so that ``notional_cents(qty, price)`` and the commission
    move the log's cash by exactly the broker's whole cents.
    """
    q, p = Decimal(repr(qty)), Decimal(repr(price))
    rate = Decimal(repr(bps)) / 10_000
    dollars = int((q * p).quantize(_CENT, rounding=ROUND_HALF_UP) * 100)  # what the broker moves, cents
    if side == "buy":
        held = float(q - (q * rate).quantize(_COIN, rounding=ROUND_HALF_UP))
        return held, (dollars - notional_cents(held, price)) / 100.0
    fee = int((q * p * rate).quantize(_CENT, rounding=ROUND_HALF_UP) * 100)
    return qty, (notional_cents(qty, price) - (dollars - fee)) / 100.0
