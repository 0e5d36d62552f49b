"""The trading REST API (paper-api.alpaca.markets/v2) over the emulated `Broker`.

Routes are the ones alpaca-py 0.44's `TradingClient` calls: account, clock, calendar, assets,
orders (submit, list, get by id / client_order_id, replace, cancel one / all) and positions (list, get,
close one / all). Multi-object DELETEs answer 207 Multi-Status with per-item statuses, as Alpaca.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from . import errors
from .assets import AssetBook
from .broker import Broker
from .http_server import JsonApi, Request
from .market_calendar import calendar_days, clock
from .order_request import parse_order, parse_replace
from .orders import Order, num
from .timeutil import format_ts, parse_rfc3339

ACCOUNT_ID = "5e1f3a0c-7b7e-4c8e-9a51-a1fa5ca0acc7"


class TradingApi:
    def __init__(self, api: JsonApi, broker: Broker, assets: AssetBook, now: Callable[[], datetime]) -> None:
        self._broker = broker
        self._assets = assets
        self._now = now
        self.created_at = now()
        api.route("GET", "/v2/account", self._account)
        api.route("GET", "/v2/clock", lambda r: (200, clock(self._now())))
        api.route("GET", "/v2/calendar", self._calendar)
        api.route("GET", "/v2/assets", self._assets_list)
        api.route("GET", "/v2/assets/{symbol:path}", self._asset)
        api.route("POST", "/v2/orders", self._submit)
        api.route("GET", "/v2/orders", self._orders)
        api.route("DELETE", "/v2/orders", lambda r: (207, self._broker.cancel_all()))
        api.route("GET", "/v2/orders:by_client_order_id", self._order_by_client_id)
        api.route("GET", "/v2/orders/{order_id}", self._order)
        api.route("DELETE", "/v2/orders/{order_id}", self._cancel)
        api.route("PATCH", "/v2/orders/{order_id}", self._replace)
        api.route("GET", "/v2/positions", self._positions)
        api.route("DELETE", "/v2/positions", self._close_all)
        api.route("GET", "/v2/positions/{symbol:path}", self._position)
        api.route("DELETE", "/v2/positions/{symbol:path}", self._close)

    # -- account, clock, calendar, assets ---------------------------------------------------------
    def account_wire(self) -> dict[str, Any]:
        with self._broker.lock:
            cash = self._broker.portfolio.cash
            long_value = short_value = Decimal(0)
            for position in self._broker.portfolio.positions.values():
                price = self._broker.price(position.symbol) or position.avg_entry_price
                value = position.qty * price
                if value >= 0:
                    long_value += value
                else:
                    short_value += value
            equity = cash + long_value + short_value
            power = self._broker.buying_power()
        money = lambda d: num(d.quantize(Decimal("0.01")))  # noqa: E731
        return {
            "id": ACCOUNT_ID,
            "account_number": "PA3EMULATOR1",
            "status": "ACTIVE",
            "crypto_status": "ACTIVE",
            "currency": "USD",
            "cash": money(cash),
            "buying_power": money(power),
            "regt_buying_power": money(power),
            "daytrading_buying_power": "0",
            "non_marginable_buying_power": money(power),
            "effective_buying_power": money(power),
            "options_buying_power": money(power),
            "accrued_fees": "0",
            "pending_transfer_in": "0",
            "pending_transfer_out": "0",
            "portfolio_value": money(equity),
            "equity": money(equity),
            "last_equity": money(equity),
            "long_market_value": money(long_value),
            "short_market_value": money(short_value),
            "position_market_value": money(long_value + short_value),
            "initial_margin": "0",
            "maintenance_margin": "0",
            "last_maintenance_margin": "0",
            "sma": "0",
            "multiplier": "1",
            "pattern_day_trader": False,
            "trading_blocked": False,
            "transfers_blocked": False,
            "account_blocked": False,
            "trade_suspended_by_user": False,
            "shorting_enabled": self._broker.allow_shorting,
            "daytrade_count": 0,
            "created_at": format_ts(self.created_at),
            "options_approved_level": 0,
            "options_trading_level": 0,
        }

    def _account(self, request: Request) -> tuple[int, Any]:
        return 200, self.account_wire()

    def _calendar(self, request: Request) -> tuple[int, Any]:
        def day(name: str) -> date | None:
            raw = request.arg(name)
            try:
                return date.fromisoformat(raw[:10]) if raw else None
            except ValueError:
                raise errors.unprocessable(f"invalid {name}") from None

        return 200, calendar_days(day("start"), day("end"))

    def _assets_list(self, request: Request) -> tuple[int, Any]:
        status, asset_class = request.arg("status"), request.arg("asset_class")
        listed = [
            asset.wire()
            for asset in self._assets.all()
            if status in (None, asset.status) and asset_class in (None, asset.asset_class)
        ]
        return 200, listed

    def _asset(self, request: Request) -> tuple[int, Any]:
        symbol = request.params["symbol"]
        asset = self._assets.find(symbol)
        if asset is None:
            raise errors.not_found(f"asset not found for {symbol}")
        return 200, asset.wire()

    # -- orders -----------------------------------------------------------------------------------
    def _submit(self, request: Request) -> tuple[int, Any]:
        return 200, self._broker.submit(parse_order(request.body))

    def _orders(self, request: Request) -> tuple[int, Any]:
        status = request.arg("status", "open")
        if status not in ("open", "closed", "all"):
            raise errors.unprocessable("invalid status")
        try:
            limit = int(request.arg("limit", "50") or 50)
        except ValueError:
            raise errors.unprocessable("invalid limit") from None
        if not 1 <= limit <= 500:
            raise errors.unprocessable("invalid limit")
        after, until = _instant(request, "after"), _instant(request, "until")
        nested = _flag(request, "nested")
        symbols = set(filter(None, (request.arg("symbols") or "").split(",")))
        side = request.arg("side")
        with self._broker.lock:
            orders = list(self._broker.orders.values())
            picked: list[Order] = []
            for order in orders:
                if nested and order.parent_id:
                    continue
                if status != "all" and order.is_open != (status == "open"):
                    continue
                if symbols and order.symbol not in symbols and order.symbol.replace("/", "") not in symbols:
                    continue
                if (side and order.side != side) or (after and order.created_at <= after):
                    continue
                if until and order.created_at > until:
                    continue
                picked.append(order)
            descending = request.arg("direction", "desc") == "desc"
            picked.sort(key=lambda o: o.created_at, reverse=descending)
            return 200, [o.wire(with_legs=nested) for o in picked[:limit]]

    def _find(self, order_id: str) -> Order:
        order = self._broker.orders.get(order_id)
        if order is None:
            raise errors.not_found("order not found")
        return order

    def _order(self, request: Request) -> tuple[int, Any]:
        """An order by id; a multi-leg order's legs only with ``nested=true`` (alpaca-py
        GetOrderByIdRequest.nested; alpaca-docs openapi.yaml Order.legs: "Otherwise, null")."""
        nested = _flag(request, "nested")
        with self._broker.lock:
            return 200, self._find(request.params["order_id"]).wire(with_legs=nested)

    def _order_by_client_id(self, request: Request) -> tuple[int, Any]:
        """An order by client order id. The endpoint takes no other parameter (alpaca-docs
        data/webapi/endpoints/orders.yaml), and alpaca-py sends no ``nested``: never any legs."""
        client_id = request.arg("client_order_id")
        if not client_id:
            raise errors.unprocessable("client_order_id is missing")
        with self._broker.lock:
            for order in self._broker.orders.values():
                if order.client_order_id == client_id:
                    return 200, order.wire(with_legs=False)
        raise errors.not_found("order not found")

    def _replace(self, request: Request) -> tuple[int, Any]:
        return 200, self._broker.replace(request.params["order_id"], parse_replace(request.body))

    def _cancel(self, request: Request) -> tuple[int, Any]:
        self._broker.cancel(request.params["order_id"])
        return 204, None

    # -- positions --------------------------------------------------------------------------------
    def _positions(self, request: Request) -> tuple[int, Any]:
        with self._broker.lock:
            symbols = sorted(self._broker.portfolio.positions)
            return 200, [self._broker.position_wire(s) for s in symbols]

    def _position(self, request: Request) -> tuple[int, Any]:
        with self._broker.lock:
            asset = self._assets.find(request.params["symbol"])
            if asset is None or asset.symbol not in self._broker.portfolio.positions:
                raise errors.not_found("position does not exist")
            return 200, self._broker.position_wire(asset.symbol)

    def _close(self, request: Request) -> tuple[int, Any]:
        qty, percentage = request.arg("qty"), request.arg("percentage")
        return 200, self._broker.close_position(request.params["symbol"], qty, percentage)

    def _close_all(self, request: Request) -> tuple[int, Any]:
        return 207, self._broker.close_all(_flag(request, "cancel_orders"))


def _instant(request: Request, name: str) -> datetime | None:
    raw = request.arg(name)
    if raw is None:
        return None
    try:
        return parse_rfc3339(raw)
    except ValueError:
        raise errors.unprocessable(f"invalid {name}") from None


def _flag(request: Request, name: str) -> bool:
    """A boolean query parameter as Alpaca's Go server parses it (strconv.ParseBool): alpaca-py sends
    Python's ``True``/``False`` through requests, so ``nested=True`` is true too."""
    return (request.arg(name) or "false") in ("1", "t", "T", "true", "TRUE", "True")
