"""The Alpaca broker adapter: the PortfolioActor's orders, through alpaca-py's TradingClient only.

Every order carries the ``client_order_id`` the portfolio derived from the log position. Alpaca refuses
a second order with the same id (HTTP 422), so a retry after a timeout or a restart after a crash looks
the existing order up instead: the same decision can never place two orders. Fills are read from the
broker's order state and given execution ids that are stable across polls, so they deduplicate.

Every request has a connect and a read timeout (actors/alpaca/http.py). A submission that times out may
or may not have reached Alpaca, so it is sent again under the same id (a 422 "already exists" then
means it had, and the order is looked up); when no attempt gets an answer the outcome is unknown and
:class:`BrokerUnreachable` says so, rather than calling the order rejected.

The real-API assumptions this adapter relies on, each with its source, are in ASSUMPTIONS.md beside
this file; the request for each order type is built in actors/alpaca/order_requests.py.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

from tape.actors.alpaca.http import harden
from tape.actors.alpaca.order_requests import order_request
from tape.actors.alpaca.order_status import (
    BrokerOrder,
    BrokerOrderNotFound,
    BrokerRejected,
    BrokerUnreachable,
    phase,
)
from tape.events.errors import ConfigError
from tape.events.orders import order_price
from tape.events.schema import Fill, OrderSubmitted
from tape.store.credentials import AlpacaCredentials

MULTI_LEG = ("oco", "bracket", "oto")  # order classes whose legs Alpaca answers only nested


class AssetNotFound(BrokerRejected):
    """Alpaca knows no asset under that symbol."""


class AccountSummary(NamedTuple):
    """Cash and equity of the account."""

    cash: float
    equity: float
    buying_power: float


def _status(exc: Exception) -> int | None:
    return getattr(exc, "status_code", None)


class AlpacaBroker:
    """Account, positions, orders and fills of an Alpaca (paper) account."""

    def __init__(
        self,
        credentials: AlpacaCredentials,
        *,
        retry_wait_seconds: float = 1,
        timeout_seconds: float | None = None,
        attempts: int = 4,
        trade_updates: bool = False,
    ) -> None:
        """Requests time out after ``timeout_seconds`` (default: the credentials', else 10 s); 429/5xx
        answers, timeouts and refused connections are tried ``attempts`` times in all, backing off
        from ``retry_wait_seconds``. ``trade_updates`` listens to Alpaca's trade-update stream."""
        from alpaca.trading.client import TradingClient

        client = TradingClient(
            api_key=credentials.api_key,
            secret_key=credentials.secret_key,
            paper=credentials.paper,
            url_override=None if credentials.base_url.endswith("alpaca.markets") else credentials.base_url,
        )
        # alpaca-py retries 429 and 504 itself; its constructor does not take the wait, its client does.
        timeout = timeout_seconds if timeout_seconds is not None else credentials.timeout_seconds
        self._client = harden(client, timeout_seconds=timeout, retry_wait_seconds=retry_wait_seconds)
        self._retry_wait = retry_wait_seconds
        self._attempts = max(1, attempts)
        self.updates: Any = None
        self._successors: dict[str, str] = {}  # client order id -> id of the order that replaced it last
        if trade_updates:
            from tape.actors.alpaca.trade_updates import TradeUpdates

            self.updates = TradeUpdates(credentials)

    def await_orders(self, client_order_ids: list[str], timeout: float = 2.0) -> bool:
        """Wait (up to ``timeout`` s) until the trade-update stream says these orders ended, so a poll
        right after finds their fills. Without the stream (off, or down) there is nothing to wait for."""
        if self.updates is None or not client_order_ids:
            return False
        return bool(self.updates.wait_ended(client_order_ids, timeout))

    def trade_updates_trouble(self) -> str:
        """Why the trade-update stream that was asked for is not listening ("" when it is, or when it
        was not asked for): fills then come by polling alone, a cycle later."""
        return "" if self.updates is None else str(self.updates.trouble())

    def close(self) -> None:
        """Stop the trade-update stream, if it runs."""
        if self.updates is not None:
            self.updates.close()

    def _backoff(self, attempt: int) -> None:
        if attempt:
            time.sleep(self._retry_wait * 2 ** (attempt - 1))

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` with Alpaca's refusals as tape errors; network failures (timeouts, refused
        connections) are retried, which is safe because every caller reads, cancels or replaces (a
        replace that arrived before its retry leaves the order ``replaced``, which refuses the retry;
        the next look-up follows it to its successor)."""
        from alpaca.common.exceptions import APIError

        for attempt in range(self._attempts):
            self._backoff(attempt)
            try:
                return fn(*args)
            except APIError as exc:
                status = _status(exc)
                if status == 401 or (status == 403 and "not authorized" in str(exc).lower()):
                    raise ConfigError(
                        "Alpaca rejected the credentials (check ALPACA_API_KEY and ALPACA_API_SECRET)"
                    ) from None
                error = {"find an order": BrokerOrderNotFound, "read an asset": AssetNotFound}.get(what)
                error = error if status == 404 and error is not None else BrokerRejected
                raise error(f"Alpaca refused to {what} (HTTP {status}): {_message(exc)}") from None
            except OSError as exc:
                failure = exc
        raise BrokerRejected(f"cannot reach Alpaca to {what}: {type(failure).__name__}") from None

    def account(self) -> AccountSummary:
        """Cash, equity and buying power."""
        raw = self._call("read the account", self._client.get_account)
        return AccountSummary(float(raw.cash or 0), float(raw.equity or 0), float(raw.buying_power or 0))

    def clock_ns(self) -> int:
        """The broker's current time (its ``/v2/clock``), ns since epoch UTC."""
        stamp = self._call("read the clock", self._client.get_clock).timestamp
        return round(stamp.timestamp() * 1_000_000) * 1000

    def easy_to_borrow(self, symbols: list[str]) -> list[str]:
        """The stocks among ``symbols`` whose asset Alpaca says is ``shortable`` and ``easy_to_borrow``
        (GET /v2/assets/{symbol}), in the order given. An asset Alpaca does not know is not; a crypto
        pair never is. Raises BrokerRejected when Alpaca cannot be asked (nothing is assumed)."""
        easy = []
        for symbol in symbols:
            if "/" in symbol:
                continue
            try:
                asset = self._call("read an asset", self._client.get_asset, symbol)
            except AssetNotFound:
                continue
            if getattr(asset, "shortable", False) and getattr(asset, "easy_to_borrow", False):
                easy.append(symbol)
        return easy

    def positions(self) -> dict[str, float]:
        """Quantity held per symbol."""
        return {p.symbol: float(p.qty) for p in self._call("list positions", self._client.get_all_positions)}

    def submit(
        self,
        order: OrderSubmitted,
        *,
        time_in_force: str = "day",
        trail_percent: float | None = None,
        trail_price: float | None = None,
    ) -> BrokerOrder:
        """Place ``order`` under its client order id; an id Alpaca already knows returns that order.
        ``time_in_force`` (day or gtc) is a working entry's (a limit, stop or stop-limit entry);
        ``trail_percent`` or ``trail_price`` a trailing stop's distance."""
        from alpaca.common.exceptions import APIError

        request = order_request(order, time_in_force, trail_percent=trail_percent, trail_price=trail_price)
        for attempt in range(self._attempts):
            self._backoff(attempt)
            try:
                placed = self._client.submit_order(request)
            except APIError as exc:
                if _status(exc) == 422 and "client_order_id" in str(exc):
                    return self._placed_earlier(order.client_order_id)
                return self._call("place an order", _raise, exc)
            except OSError as exc:  # timed out or refused: it may have arrived; same id again
                failure = exc
                continue
            return _broker_order(placed)
        raise BrokerUnreachable(
            f"no answer from Alpaca to order {order.client_order_id} after {self._attempts} attempts "
            f"({type(failure).__name__}); it may have been placed, the next cycle looks it up"
        )

    def _placed_earlier(self, client_order_id: str) -> BrokerOrder:
        """The order an earlier attempt (or run) placed under ``client_order_id``. Alpaca just said it
        has it, so failing to read it back is no refusal: the order stays working, and the next cycle
        looks it up (logging it rejected would drop a live order from the books)."""
        try:
            return self.order(client_order_id)
        except BrokerRejected as exc:
            raise BrokerUnreachable(
                f"order {client_order_id} is at Alpaca but could not be read back ({exc}); "
                "the next cycle looks it up"
            ) from None

    def order(self, client_order_id: str) -> BrokerOrder:
        """The order placed under ``client_order_id``; a multi-leg order with its legs, which the
        by-client-id lookup never carries (it is read again by id, nested). An order that was replaced
        is answered by its newest successor, under the same ``client_order_id``."""
        return self._current(client_order_id)._replace(client_order_id=client_order_id)

    def _current(self, client_order_id: str) -> BrokerOrder:
        from alpaca.trading.requests import GetOrderByIdRequest

        known = self._successors.get(client_order_id)
        if known is not None:  # read the newest successor directly, not the chain again
            found = self._call("read an order", self._client.get_order_by_id, known)
        else:
            found = self._call("find an order", self._client.get_order_by_client_id, client_order_id)
        while _enum_text(found.status) == "replaced" and getattr(found, "replaced_by", None):
            found = self._call("read an order", self._client.get_order_by_id, str(found.replaced_by))
            self._successors[client_order_id] = str(found.id)
        if _enum_text(getattr(found, "order_class", None)) in MULTI_LEG and not getattr(found, "legs", None):
            nested = GetOrderByIdRequest(nested=True)
            # Not "find an order": the order exists, so a failure here is no sign it never arrived.
            found = self._call("read an order's legs", self._client.get_order_by_id, str(found.id), nested)
        return _broker_order(found)

    def replace_stop(self, client_order_id: str, stop_price: float) -> bool:
        """Move the working stop order placed under ``client_order_id`` (or its newest successor) to
        ``stop_price`` by replacing it (PATCH /v2/orders/{id}). Idempotent: a stop already there is left
        alone, so a retry or a restart never replaces twice. Returns False when the order is no longer
        working (filled or ended: the fill poll books it); raises BrokerRejected when Alpaca refuses or
        cannot be reached (the next cycle's look-up tries again)."""
        from alpaca.trading.requests import ReplaceOrderRequest

        current = self._current(client_order_id)
        if current.done:
            return False
        price = order_price(stop_price)
        if current.stop_price is not None and abs(current.stop_price - price) < 1e-9:
            return True
        successor = _successor_id(client_order_id, current.client_order_id)
        request = ReplaceOrderRequest(stop_price=price, client_order_id=successor)
        placed = self._call(
            "replace an order", self._client.replace_order_by_id, current.broker_order_id, request
        )
        self._successors[client_order_id] = str(placed.id)
        return True

    def orders(self, status: str = "open") -> list[BrokerOrder]:
        """The most recent orders (up to 500) by tape's reading of their status: ``open`` (working),
        ``closed`` (filled or ended, ``done_for_day`` included) or ``all``."""
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        if status not in ("open", "closed", "all"):
            raise ValueError(f"orders: open, closed or all, not {status!r}")
        request = GetOrdersRequest(status=QueryOrderStatus.ALL, limit=500)
        listed = [_broker_order(o) for o in self._call("list orders", self._client.get_orders, request)]
        if status == "all":
            return listed
        return [o for o in listed if (phase(o.status) == "working") == (status == "open")]

    def cancel(self, client_order_id: str) -> None:
        """Cancel the order placed under ``client_order_id``."""
        found = self.order(client_order_id)
        self._call("cancel an order", self._client.cancel_order_by_id, found.broker_order_id)

    def new_fill(
        self,
        order: OrderSubmitted,
        *,
        ts: int,
        reason: str,
        logged_qty: float = 0.0,
        logged_notional: float = 0.0,
    ) -> Fill | None:
        """The part of the order filled since ``logged_qty`` (at ``logged_notional``) was logged, as one
        Fill, or None. Its id is ``<order id>@<cumulative filled qty>``: polling again before anything
        new filled yields the same id, so the log keeps each execution once."""
        state = self.order(order.client_order_id)
        if state.filled_qty <= logged_qty + 1e-9 or state.filled_avg_price is None:
            return None
        qty = state.filled_qty - logged_qty
        price = (state.filled_avg_price * state.filled_qty - logged_notional) / qty
        return Fill(
            ts=ts,
            client_order_id=order.client_order_id,
            exec_id=f"{state.broker_order_id}@{state.filled_qty:g}",
            symbol=order.symbol,
            side=order.side,
            qty=qty,
            price=price,
            reason=reason,
        )


def _raise(exc: Exception) -> None:
    raise exc


def _broker_order(raw: Any) -> BrokerOrder:
    # An OCO is its take-profit (the parent) plus a stop leg: when the stop triggers, the parent is
    # canceled and the leg fills. The order's execution is then the leg's.
    for leg in getattr(raw, "legs", None) or []:
        if float(leg.filled_qty or 0) > 0:
            return _execution_of(leg, raw)
    return _execution_of(raw, raw)


def _execution_of(order: Any, parent: Any) -> BrokerOrder:
    """What ``order`` (the parent itself, or one of its legs) executed, under the parent's client id."""
    return BrokerOrder(
        broker_order_id=str(order.id),
        client_order_id=parent.client_order_id,
        symbol=parent.symbol,
        side=str(getattr(order.side, "value", order.side)),
        status=str(getattr(order.status, "value", order.status)),
        qty=float(order.qty or 0),
        filled_qty=float(order.filled_qty or 0),
        filled_avg_price=float(order.filled_avg_price) if order.filled_avg_price else None,
        order_type=_order_type(order),
        stop_price=float(order.stop_price) if getattr(order, "stop_price", None) else None,
    )


def _successor_id(logged: str, current: str) -> str:
    """The client order id of the next replacement of the order logged as ``logged`` whose newest
    version is ``current``: ``<logged>.1``, ``<logged>.2``, ... (Alpaca wants each id unique)."""
    suffix = current[len(logged) + 1 :] if current.startswith(logged + ".") else ""
    return f"{logged}.{int(suffix) + 1 if suffix.isdigit() else 1}"


def _order_type(raw: Any) -> str:
    kind = getattr(raw, "order_type", None) or getattr(raw, "type", None) or "market"
    return _enum_text(kind)


def _enum_text(value: Any) -> str:
    return str(getattr(value, "value", value) or "")


def _message(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 200 else text[:200] + "…"
