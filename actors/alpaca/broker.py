"""The Alpaca broker adapter: the PortfolioActor's orders, through alpaca-py's TradingClient only.

Every order carries the ``client_order_id`` the portfolio derived from the log position. Alpaca refuses
a second order with the same id (HTTP 422), so a retry after a timeout or a restart after a crash looks
the existing order up instead: the same decision can never place two orders. Fills are read from the
broker's order state and given execution ids that are stable across polls, so they deduplicate.

Every request has a connect and a read timeout (actors/alpaca/http.py). A submission that times out may
or may not have reached Alpaca, so it is sent again under the same id (a 422 "already exists" then
means it had, and the order is looked up); when no attempt gets an answer the outcome is unknown and
:class:`BrokerUnreachable` says so, rather than calling the order rejected.

Real-API assumptions (each with the document it comes from; the recorded facts are in the shared
``alpaca/reference_payloads.json``, and the test emulator, tests/alpaca_emulator, is held to them):

- Legs are answered only when asked for. ``get_order_by_client_id`` sends only ``client_order_id``
  to ``GET /v2/orders:by_client_order_id`` (alpaca-py alpaca/trading/client.py; alpaca-docs
  data/webapi/endpoints/orders.yaml: "query parameters: client_order_id only"), and ``legs`` is
  "an array of Order entities ... when querying non-simple order_class orders in a nested style.
  Otherwise, null" (alpaca-docs oas/trading/openapi.yaml, Order.legs). So a multi-leg order (OCO,
  bracket, OTO) found by client id is read again by its id with ``nested=true`` (alpaca-py
  requests.py ``GetOrderByIdRequest.nested``) before tape judges it: an OCO whose stop leg filled
  reads as a canceled parent with nothing filled without its legs, and a second exit would follow.
- An OCO is its take-profit (the parent, a limit order) and a stop-loss leg; the leg not working yet
  is ``held`` (alpaca-py enums.py ``OrderStatus.HELD``, pull request #182; issue #198; alpaca-docs
  content/trading/orders.md, "OCO Orders": the legs "work exactly the same way as the two legs of
  the bracket orders"). When the stop triggers, the parent is canceled and the leg fills: the
  order's execution is then the leg's.
- An order goes ``accepted`` -> ``pending_new`` -> ``new``, and a cancel answered 204 completes later
  through ``pending_cancel`` (alpaca-docs content/trading/orders.md, "Order Lifecycle";
  data/webapi/endpoints/orders.yaml, DELETE /v2/orders/{order_id}: "Upon acceptance of the cancel
  request, it returns status 204"). An order in those states may still fill: tape waits for it.
- ``done_for_day`` "will not receive further updates until the next trading day" and
  ``GET /v2/orders?status=open`` lists it (alpaca-docs content/trading/orders.md; alpaca-py
  requests.py ``GetOrdersRequest.status``). Tape counts it as ended and cancels the rest
  (actors/alpaca/order_status.py holds the one mapping of every status to working, filled or ended).
- Entries are sent as Alpaca's own ``limit``, ``stop`` and ``stop_limit`` orders (alpaca-py
  requests.py ``LimitOrderRequest``, ``StopOrderRequest``, ``StopLimitOrderRequest``) with time in force
  ``day`` or ``gtc`` (reference_payloads.json entities.Order: samples with ``time_in_force`` "day" and
  "gtc"). Prices go in whole cents, hundredths of a cent under $1 (alpaca-docs content/trading/orders.md,
  sub-penny increments: finer prices are rejected); events/orders.py ``order_price`` rounds them before
  they are logged, so the log, the backtest and the order carry the same price.
- A limit executes at its limit or better; a price only equal to it "may or may not" fill it, and the
  stock should not trade better than the limit without it executing (alpaca-docs
  content/trading/orders.md, "Limit Order" and "Order Handling Standards"). A stop elects on a print at
  or past its stop and becomes a market order, which "may fill above or below the stop"; Alpaca turns a
  *buy* stop into a stop-limit 4 % above a stop under $50, 2.5 % above one at or over $50 ("Stop
  Order"). A stop-limit becomes a limit at its limit once elected; "in the case of a gap ... that
  causes the election of your order, but not the execution, your order will remain active as a limit
  order" ("Stop Limit Order"). The emulator is held to this (tests/alpaca_emulator/matching.py): a
  price crossed within a bar executes at the order's own level (never better), a gap at the print.
- A ``day`` order "is only valid during Regular Trading Hours" and unfilled after the closing auction
  ends; submitted after the close it is queued for the next trading day (alpaca-docs
  content/trading/orders.md, "Time in Force"). That page says "automatically canceled"; its lifecycle
  lists ``expired`` and the Order entity carries ``expired_at`` (reference_payloads.json
  entities.Order documented keys; behaviours d_open_closed: "canceled/expired: no further updates will
  occur"), and the emulator ends it ``expired``. The session logs an entry Alpaca ended ``expired``
  as ``order_cancelled`` with reason ``expired``; one Alpaca ended ``canceled`` as reason ``broker``
  (the order ends either way, only the reason differs).
- A ``trailing_stop`` takes exactly one of ``trail_percent`` and ``trail_price`` (alpaca-py requests.py
  ``TrailingStopOrderRequest``: "The percent price difference by which the trailing stop will trail" /
  "The absolute price difference"), keeps its high-water mark in ``hwm`` and its current stop in
  ``stop_price`` (reference_payloads.json entities.Order documented keys ``hwm``, ``trail_percent``,
  ``trail_price``, ``stop_price``) and moves them on every trade, not on bar closes (alpaca-docs
  content/trading/orders.md, "Trailing Stop Orders"). It is standalone: Alpaca takes no trailing stop as
  a bracket or OCO leg (same page), so a take-profit beside it is watched by the session.
- An open order is changed by replacing it: ``PATCH /v2/orders/{order_id}`` (alpaca-py
  ``replace_order_by_id`` with ``ReplaceOrderRequest``: qty, time_in_force, limit_price, stop_price,
  trail, client_order_id) creates a new order; the old one ends ``replaced`` with ``replaced_by``, the
  new one carries ``replaces`` (reference_payloads.json entities.Order documented keys ``replaced_at``,
  ``replaced_by``, ``replaces``; the GET /v2/orders sample links two orders so). A filled or ended order
  cannot be replaced (a 4xx). tape replaces only the ``stop`` that holds a stock's ``--trail-atr``
  level, names each successor ``<client id>.<n>`` and reads an order through its successors
  (:meth:`AlpacaBroker.order`), so the logged client id stays the order's name.
- Crypto pairs take ``market``, ``limit`` and ``stop_limit`` only, with ``gtc`` or ``ioc`` (alpaca-docs
  content/trading/crypto-trading.md, "Crypto Orders"; reference_payloads.json entities.Order, the
  BTC/USD sample with ``time_in_force`` "gtc"): a pair's stop entry is sent as a ``stop_limit`` and
  its trailing stop is watched by the session, never sent (actors/live_session/crypto.py).
- Short selling: "Alpaca currently only supports opening short positions in easy to borrow (ETB)
  securities" (alpaca-docs content/trading/margin-and-shorting.md; reference_payloads.json behaviours
  g_short). An asset says so in ``shortable`` and ``easy_to_borrow`` (GET /v2/assets/{symbol};
  reference_payloads.json entities.Asset), which :meth:`AlpacaBroker.easy_to_borrow` reads; an asset
  Alpaca does not know (404) is not shortable, and crypto assets never are.
- Orders outside regular hours: Alpaca refuses only ``extended_hours`` orders that are not day limits
  (alpaca-docs content/trading/orders.md, "Extended Hours Trading"); tape never sets
  ``extended_hours`` and a live session's cycles run inside NYSE sessions only
  (actors/schedule.py ``next_run``), so no order is sent outside regular hours.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

from tape.actors.alpaca.http import harden
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


def order_request(
    order: OrderSubmitted,
    time_in_force: str = "day",
    *,
    trail_percent: float | None = None,
    trail_price: float | None = None,
) -> Any:
    """The alpaca-py request for ``order``: a stock's protective order is an OCO or a standalone
    trailing stop (``trail_percent`` or ``trail_price``, gtc), a pair's a stop-limit; an entry is sent
    as its own type (market, limit, stop or stop-limit) with ``time_in_force``. A pair takes gtc only
    (a day entry of a pair is ended by the session at its session's end)."""
    from alpaca.trading.enums import OrderClass, OrderSide, TimeInForce
    from alpaca.trading.requests import (
        LimitOrderRequest,
        MarketOrderRequest,
        StopLimitOrderRequest,
        StopLossRequest,
        StopOrderRequest,
        TakeProfitRequest,
        TrailingStopOrderRequest,
    )

    side = OrderSide.BUY if order.side == "buy" else OrderSide.SELL
    crypto = "/" in order.symbol
    common: dict[str, Any] = {"symbol": order.symbol, "qty": order.qty, "side": side}
    common["client_order_id"] = order.client_order_id
    if order.order_type == "oco":
        return LimitOrderRequest(
            **common,
            time_in_force=TimeInForce.GTC,
            order_class=OrderClass.OCO,
            limit_price=round(order.limit_price or 0.0, 2),
            take_profit=TakeProfitRequest(limit_price=round(order.limit_price or 0.0, 2)),
            stop_loss=StopLossRequest(stop_price=round(order.stop_price or 0.0, 2)),
        )
    if order.order_type == "trailing_stop":
        return TrailingStopOrderRequest(
            **common, time_in_force=TimeInForce.GTC, trail_percent=trail_percent, trail_price=trail_price
        )
    if order.reason == "protective" and order.order_type == "stop":  # a stock's ATR trailing stop
        return StopOrderRequest(
            **common, time_in_force=TimeInForce.GTC, stop_price=order_price(order.stop_price or 0.0)
        )
    if order.reason != "entry" and order.order_type == "stop_limit":  # a pair's protective stop
        return StopLimitOrderRequest(
            **common,
            time_in_force=TimeInForce.GTC,
            stop_price=order.stop_price,  # as logged: the session rounds a pair's prices
            limit_price=order.limit_price,
        )
    if order.order_type == "market":
        tif = TimeInForce.GTC if crypto else TimeInForce.DAY  # crypto: no DAY
        return MarketOrderRequest(**common, time_in_force=tif)
    tif = TimeInForce.GTC if crypto or time_in_force == "gtc" else TimeInForce.DAY
    if order.order_type == "limit":
        return LimitOrderRequest(**common, time_in_force=tif, limit_price=order.limit_price)
    if order.order_type == "stop":
        return StopOrderRequest(**common, time_in_force=tif, stop_price=order.stop_price)
    return StopLimitOrderRequest(
        **common, time_in_force=tif, stop_price=order.stop_price, limit_price=order.limit_price
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
