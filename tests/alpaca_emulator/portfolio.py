"""Cash and positions, moved only by fills; their JSON forms (Alpaca's position entity)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .assets import Asset, position_symbol
from .orders import num

_CENT = Decimal("0.01")
_COIN = Decimal("0.000000001")  # the crypto quantity increment (min_trade_increment)


@dataclass
class Position:
    asset: Asset
    qty: Decimal  # negative when short
    avg_entry_price: Decimal

    @property
    def symbol(self) -> str:
        return self.asset.symbol

    @property
    def side(self) -> str:
        return "long" if self.qty > 0 else "short"

    @property
    def cost_basis(self) -> Decimal:
        return self.qty * self.avg_entry_price

    def wire(
        self, current_price: Decimal | None, qty_held_for_orders: Decimal = Decimal(0)
    ) -> dict[str, Any]:
        price = current_price if current_price is not None else self.avg_entry_price
        market_value = self.qty * price
        unrealized = market_value - self.cost_basis
        plpc = unrealized / abs(self.cost_basis) if self.cost_basis else Decimal(0)
        crypto = self.asset.asset_class == "crypto"
        return {
            "asset_id": self.asset.id,
            "symbol": position_symbol(self.symbol),
            "exchange": "CRYPTO" if crypto else self.asset.exchange,
            "asset_class": self.asset.asset_class,
            "asset_marginable": not crypto,
            "qty": num(self.qty),
            "qty_available": num(self.qty - qty_held_for_orders),
            "avg_entry_price": num(self.avg_entry_price.quantize(Decimal("0.000001"))),
            "side": self.side,
            "market_value": num(market_value.quantize(_CENT)),
            "cost_basis": num(self.cost_basis.quantize(_CENT)),
            "unrealized_pl": num(unrealized.quantize(_CENT)),
            "unrealized_plpc": num(plpc.quantize(Decimal("0.0000000001"))),
            "unrealized_intraday_pl": num(unrealized.quantize(_CENT)),
            "unrealized_intraday_plpc": num(plpc.quantize(Decimal("0.0000000001"))),
            "current_price": num(price),
            "lastday_price": num(price),
            "change_today": "0",
        }


class Portfolio:
    """Cash plus positions keyed by order symbol. Not thread-safe: the broker's lock guards it."""

    def __init__(self, cash: Decimal) -> None:
        self.cash = cash
        self.positions: dict[str, Position] = {}

    def apply_fill(
        self, asset: Asset, side: str, qty: Decimal, price: Decimal, *, fee_rate: Decimal = Decimal(0)
    ) -> tuple[Decimal, Decimal]:
        """Move cash and the position for one execution; returns the position quantity after it and
        the fee charged.

        Crypto moves dollars in whole cents, and its fee is taken from what the trade credits, as
        Alpaca does: a buy of ``qty`` coins leaves ``qty - fee`` (the fee rounded half up to the
        1e-9 coin increment), a sell credits the proceeds less the fee (rounded half up to the cent).
        """
        fee = Decimal(0)
        if asset.asset_class == "crypto":
            notional = (qty * price).quantize(_CENT, rounding=ROUND_HALF_UP)
            if side == "buy":
                fee = (qty * fee_rate).quantize(_COIN, rounding=ROUND_HALF_UP)
                self.cash -= notional
                signed = qty - fee
            else:
                fee = (qty * price * fee_rate).quantize(_CENT, rounding=ROUND_HALF_UP)
                self.cash += notional - fee
                signed = -qty
        else:
            signed = qty if side == "buy" else -qty
            self.cash -= signed * price
        position = self.positions.get(asset.symbol)
        old = position.qty if position else Decimal(0)
        new = old + signed
        if new == 0:
            self.positions.pop(asset.symbol, None)
            return new, fee
        if position is None or old == 0:
            self.positions[asset.symbol] = Position(asset, new, price)
        elif (old > 0) == (signed > 0):  # adding to the position: average in
            position.avg_entry_price = (old * position.avg_entry_price + signed * price) / new
            position.qty = new
        elif (old > 0) == (new > 0):  # reducing: the entry price stays
            position.qty = new
        else:  # flipped through zero: the new side's entry is this fill
            position.qty, position.avg_entry_price = new, price
        return new, fee

    def qty(self, symbol: str) -> Decimal:
        position = self.positions.get(symbol)
        return position.qty if position else Decimal(0)
