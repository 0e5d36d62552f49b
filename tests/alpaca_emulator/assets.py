"""The asset master list: which symbols the emulated broker knows and how it describes them.

A symbol is known once a test registers it (`emu.add_asset`) or gives it market data (bars, a
trade, a quote, a price). Asset ids are stable: a UUID derived from the symbol.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import Any

from .market import is_crypto

_NAMESPACE = uuid.UUID("5e1f3a0c-7b7e-4c8e-9a51-a1fa5ca00001")


@dataclass(frozen=True)
class Asset:
    symbol: str
    name: str = ""
    exchange: str = "NASDAQ"
    status: str = "active"
    tradable: bool = True
    shortable: bool = True
    fractionable: bool = True

    @property
    def id(self) -> str:
        return str(uuid.uuid5(_NAMESPACE, self.symbol))

    @property
    def asset_class(self) -> str:
        return "crypto" if is_crypto(self.symbol) else "us_equity"

    def wire(self) -> dict[str, Any]:
        crypto = is_crypto(self.symbol)
        return {
            "id": self.id,
            "class": self.asset_class,
            "exchange": "CRYPTO" if crypto else self.exchange,
            "symbol": self.symbol,
            "name": self.name or self.symbol,
            "status": self.status,
            "tradable": self.tradable,
            "marginable": not crypto,
            "maintenance_margin_requirement": 100 if crypto else 30,
            "shortable": self.shortable and not crypto,
            "easy_to_borrow": self.shortable and not crypto,
            "fractionable": self.fractionable,
            "min_order_size": "0.000000002" if crypto else None,
            "min_trade_increment": "0.000000001" if crypto else None,
            "price_increment": "0.01" if not crypto else "1",
            "attributes": [],
        }


def position_symbol(symbol: str) -> str:
    """Positions name crypto pairs without the slash (`BTC/USD` -> `BTCUSD`)."""
    return symbol.replace("/", "")


class AssetBook:
    def __init__(self, implicit: Any) -> None:
        """`implicit()` returns the symbols that have market data (known without registration)."""
        self._lock = threading.Lock()
        self._assets: dict[str, Asset] = {}
        self._implicit = implicit

    def add(self, symbol: str, **attributes: Any) -> Asset:
        with self._lock:
            asset = Asset(symbol=symbol, **attributes)
            self._assets[symbol] = asset
            return asset

    def find(self, symbol_or_id: str) -> Asset | None:
        """By symbol (`BTC/USD` or `BTCUSD`) or by asset id."""
        with self._lock:
            registered = dict(self._assets)
        for symbol in self._implicit():
            registered.setdefault(symbol, Asset(symbol=symbol))
        for asset in registered.values():
            if symbol_or_id in (asset.symbol, asset.id, position_symbol(asset.symbol)):
                return asset
        return None

    def all(self) -> list[Asset]:
        with self._lock:
            registered = dict(self._assets)
        for symbol in self._implicit():
            registered.setdefault(symbol, Asset(symbol=symbol))
        return sorted(registered.values(), key=lambda a: a.symbol)
