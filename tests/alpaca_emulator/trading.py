"""Alpaca's trading REST API (paper), served on 127.0.0.1 for the real alpaca-py TradingClient.

It keeps books like the real service: unique ``client_order_id`` (a second submit is refused with 422),
market orders fill at the emulator's current price for the symbol (optionally in parts), OCO exit
orders rest until a price crosses a leg, cash and positions follow the fills, and every fill has an
execution id. Tests move prices with ``set_price`` and can inject HTTP faults with ``fail_next``.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


class TradingEmulator:
    """Start with ``with TradingEmulator() as emu:``; point TradingClient(url_override=emu.url) at it."""

    key_id = "TESTKEY"
    secret = "TESTSECRET"

    def __init__(self, cash: float = 100_000.0) -> None:
        self.cash = cash
        self.prices: dict[str, float] = {}
        self.positions: dict[str, dict[str, float]] = {}  # symbol -> {"qty", "avg_entry_price"}
        self.orders: list[dict[str, Any]] = []
        self.fills: list[dict[str, Any]] = []  # every execution, with its execution_id
        self.partial_fill_ratio = 1.0  # < 1: market orders first fill only this share
        self.requests: list[str] = []
        self._faults: list[int] = []
        self._lock = threading.RLock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> TradingEmulator:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------ test controls

    def set_price(self, symbol: str, price: float) -> None:
        """The symbol trades at ``price`` now: resting OCO legs it crosses fill."""
        with self._lock:
            self.prices[symbol] = price
            for order in self.orders:
                if (
                    order["symbol"] == symbol
                    and order["status"] in ("new", "accepted")
                    and order["legs_exit"]
                ):
                    stop, limit = order["stop_price_f"], order["limit_price_f"]
                    if stop and price <= stop:
                        self._fill(order, float(order["qty"]), price)
                    elif limit and price >= limit:
                        self._fill(order, float(order["qty"]), limit)

    def fill_remaining(self, client_order_id: str) -> None:
        """Complete a partially filled order at the current price."""
        with self._lock:
            order = next(o for o in self.orders if o["client_order_id"] == client_order_id)
            left = float(order["qty"]) - float(order["filled_qty"])
            if left > 0:
                self._fill(order, left, self.prices[order["symbol"]])

    def fail_next(self, count: int, status: int = 500) -> None:
        """The next ``count`` requests answer ``status``."""
        with self._lock:
            self._faults.extend([status] * count)

    # ------------------------------------------------------------------ books

    def _fill(self, order: dict[str, Any], qty: float, price: float) -> None:
        side = order["side"]
        symbol = order["symbol"]
        position = self.positions.setdefault(symbol, {"qty": 0.0, "avg_entry_price": 0.0})
        if side == "buy":
            total = position["qty"] + qty
            position["avg_entry_price"] = (
                position["avg_entry_price"] * position["qty"] + price * qty
            ) / total
            position["qty"] = total
            self.cash -= qty * price
        else:
            position["qty"] -= qty
            self.cash += qty * price
            if position["qty"] <= 1e-9:
                del self.positions[symbol]
        filled = float(order["filled_qty"]) + qty
        avg = float(order["filled_avg_price"] or 0.0)
        order["filled_avg_price"] = str((avg * float(order["filled_qty"]) + price * qty) / filled)
        order["filled_qty"] = str(filled)
        order["status"] = "filled" if filled >= float(order["qty"]) - 1e-9 else "partially_filled"
        order["updated_at"] = _now()
        if order["status"] == "filled":
            order["filled_at"] = order["updated_at"]
        self.fills.append(
            {
                "execution_id": str(uuid.uuid4()),
                "order_id": order["id"],
                "client_order_id": order["client_order_id"],
                "symbol": symbol,
                "side": side,
                "qty": qty,
                "price": price,
            }
        )

    def _order_json(self, order: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in order.items() if not k.endswith("_f") and k != "legs_exit"}

    def _submit(self, body: dict[str, Any]) -> tuple[int, Any]:
        symbol = body.get("symbol", "")
        qty = float(body.get("qty") or 0)
        side = body.get("side")
        coid = body.get("client_order_id") or str(uuid.uuid4())
        if any(o["client_order_id"] == coid for o in self.orders):
            return 422, {"code": 40010001, "message": "client_order_id must be unique"}
        if symbol not in self.prices:
            return 422, {"code": 40010001, "message": f"asset {symbol} is not tradable"}
        if qty <= 0:
            return 422, {"code": 40010001, "message": "qty must be > 0"}
        price = self.prices[symbol]
        order_class = body.get("order_class") or "simple"
        if side == "buy" and order_class == "simple" and qty * price > self.cash:
            return 403, {"code": 40310000, "message": "insufficient buying power"}
        if side == "sell" and self.positions.get(symbol, {}).get("qty", 0.0) < qty - 1e-9:
            return 403, {
                "code": 40310000,
                "message": f"insufficient qty available for order (requested: {qty:g})",
            }
        now = _now()
        stop = float((body.get("stop_loss") or {}).get("stop_price") or body.get("stop_price") or 0)
        limit = float((body.get("take_profit") or {}).get("limit_price") or body.get("limit_price") or 0)
        order = {
            "id": str(uuid.uuid4()),
            "client_order_id": coid,
            "created_at": now,
            "updated_at": now,
            "submitted_at": now,
            "filled_at": None,
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, symbol)),
            "symbol": symbol,
            "asset_class": "us_equity",
            "qty": str(qty),
            "filled_qty": "0",
            "filled_avg_price": None,
            "order_class": order_class,
            "order_type": body.get("type", "market"),
            "type": body.get("type", "market"),
            "side": side,
            "time_in_force": body.get("time_in_force", "day"),
            "limit_price": str(limit) if limit else None,
            "stop_price": str(stop) if stop else None,
            "status": "accepted",
            "extended_hours": False,
            "legs": None,
            "stop_price_f": stop,
            "limit_price_f": limit,
            "legs_exit": order_class == "oco",
        }
        self.orders.append(order)
        if order_class == "simple" and order["type"] == "market":
            self._fill(order, qty * self.partial_fill_ratio if self.partial_fill_ratio < 1 else qty, price)
        elif order_class == "oco":
            order["status"] = "new"
            self.set_price(symbol, price)  # a level already crossed fills at once
        return 200, self._order_json(order)

    def _answer(
        self, method: str, path: str, query: dict[str, list[str]], headers: Any, body: bytes
    ) -> tuple[int, Any]:
        with self._lock:
            self.requests.append(f"{method} {path}")
            if self._faults:
                status = self._faults.pop(0)
                return status, {"message": f"injected fault {status}"}
            if (
                headers.get("APCA-API-KEY-ID") != self.key_id
                or headers.get("APCA-API-SECRET-KEY") != self.secret
            ):
                return 401, {"code": 40110000, "message": "request is not authorized"}
            parts = [unquote(p) for p in path.strip("/").split("/")]
            route: dict[tuple[str, str], Callable[[], tuple[int, Any]]] = {
                ("GET", "account"): self._account,
                ("GET", "clock"): lambda: (
                    200,
                    {"timestamp": _now(), "is_open": True, "next_open": _now(), "next_close": _now()},
                ),
                ("GET", "positions"): lambda: (200, [self._position_json(s) for s in sorted(self.positions)]),
            }
            if parts[0] != "v2" or len(parts) < 2:
                return 404, {"message": "not found"}
            key = (method, parts[1])
            if len(parts) == 2 and key in route:
                return route[key]()
            if parts[1] == "orders:by_client_order_id" and method == "GET":
                coid = query.get("client_order_id", [""])[0]
                found = next((o for o in self.orders if o["client_order_id"] == coid), None)
                return (200, self._order_json(found)) if found else (404, {"message": "order not found"})
            if parts[1] == "orders":
                if len(parts) == 2 and method == "POST":
                    return self._submit(json.loads(body or b"{}"))
                if len(parts) == 2 and method == "GET":
                    return 200, self._list_orders(query.get("status", ["open"])[0])
                order = (
                    next((o for o in self.orders if o["id"] == parts[2]), None) if len(parts) == 3 else None
                )
                if order is None:
                    return 404, {"message": "order not found"}
                if method == "GET":
                    return 200, self._order_json(order)
                if method == "DELETE":
                    if order["status"] in ("filled", "canceled"):
                        return 422, {"message": f"order is already {order['status']}"}
                    order["status"], order["canceled_at"] = "canceled", _now()
                    return 204, None
            if parts[1] == "positions" and len(parts) == 3:
                if parts[2] not in self.positions:
                    return 404, {"code": 40410000, "message": "position does not exist"}
                return 200, self._position_json(parts[2])
            return 404, {"message": "not found"}

    def _list_orders(self, status: str) -> list[dict[str, Any]]:
        open_states = ("new", "accepted", "partially_filled")
        keep = {
            "open": lambda o: o["status"] in open_states,
            "closed": lambda o: o["status"] not in open_states,
            "all": lambda o: True,
        }[status]
        return [self._order_json(o) for o in self.orders if keep(o)]

    def _account(self) -> tuple[int, Any]:
        value = sum(p["qty"] * self.prices.get(s, p["avg_entry_price"]) for s, p in self.positions.items())
        return 200, {
            "id": "00000000-0000-0000-0000-000000000001",
            "account_number": "PA0000000",
            "status": "ACTIVE",
            "currency": "USD",
            "cash": str(self.cash),
            "buying_power": str(self.cash),
            "equity": str(self.cash + value),
            "portfolio_value": str(self.cash + value),
            "long_market_value": str(value),
        }

    def _position_json(self, symbol: str) -> dict[str, Any]:
        p = self.positions[symbol]
        price = self.prices.get(symbol, p["avg_entry_price"])
        return {
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, symbol)),
            "symbol": symbol,
            "exchange": "NASDAQ",
            "asset_class": "us_equity",
            "avg_entry_price": str(p["avg_entry_price"]),
            "qty": str(p["qty"]),
            "side": "long",
            "cost_basis": str(p["qty"] * p["avg_entry_price"]),
            "market_value": str(p["qty"] * price),
            "current_price": str(price),
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                parsed = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, payload = emulator._answer(
                    method, parsed.path, parse_qs(parsed.query), self.headers, body
                )
                raw = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_DELETE(self) -> None:
                self._serve("DELETE")

            def log_message(self, format: str, *args: Any) -> None:
                return None

        return Handler
