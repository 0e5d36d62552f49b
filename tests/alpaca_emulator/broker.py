"""The emulated brokerage: order lifecycle, matching at the market price, cash and positions.

Lifecycle, as Alpaca reports it (alpaca-docs content/trading/orders.md, "Order Lifecycle"): an
accepted order (`accepted`, the POST response) is routed (`pending_new` while the venue has not
accepted it yet, when a delay is set; then `new`, trade events of the same names), then fills at the
symbol's current price in one or several executions (`partially_filled` / `filled`, events
`partial_fill` / `fill`), or ends `canceled` / `rejected`. A cancel is accepted at once (204) and, with
a cancel delay, completes later through `pending_cancel` (the order can still fill meanwhile). An order
the venue is done with for the day is `done_for_day`: still open for Alpaca, it executes nothing.
Resting limit, stop, stop-limit and trailing-stop orders execute when a new price crosses them.
Only one order of an OCO or bracket group works at a time: the stop-loss leg is `held` (armed: it is
sent when its stop is hit) while the take-profit works, and bracket legs wait `held` until the entry
fills; OCO siblings cancel each other on the first fill.

Crypto pairs follow Alpaca's crypto rules: simple `market`, `limit` and `stop_limit` orders only,
and a trading fee taken from the asset the trade credits (the coin on a buy, the dollars on a sell) at
the maker rate for a limit order that rested before it filled, the taker rate otherwise.

Every state change is published as an Alpaca trade-update payload to `listeners`.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from . import errors
from .assets import Asset, AssetBook, position_symbol
from .fill_faults import FillFaults
from .market import Market, is_crypto
from .market_calendar import session_close_after
from .matching import execution_qty, level, marketable, update_trail
from .order_request import OrderSpec, ReplaceSpec
from .orders import Order, new_id, num
from .portfolio import Portfolio
from .timeutil import format_ts

TradeListener = Callable[[dict[str, Any]], None]
CRYPTO_TYPES = ("market", "limit", "stop_limit")


@dataclass(frozen=True)
class Fill:
    """One execution, as the books record it (`emu.fills`)."""

    execution_id: str
    order_id: str
    client_order_id: str
    symbol: str
    side: str
    qty: float
    price: float
    position_qty: float
    timestamp: datetime
    fee: float = 0.0  # crypto: in the credited asset (coins on a buy, dollars on a sell)
    liquidity: str = ""  # crypto: "maker" or "taker"


class Broker:
    def __init__(
        self, market: Market, assets: AssetBook, cash: Decimal, clock: Callable[[], datetime]
    ) -> None:
        self.lock = threading.RLock()
        self._market = market
        self._assets = assets
        self._now = clock
        self.portfolio = Portfolio(cash)
        self.orders: dict[str, Order] = {}  # every order and leg, in submission order
        self.fills: list[Fill] = []
        self.listeners: list[TradeListener] = []
        self.allow_shorting = False
        self.partial_fraction: float | None = None
        self.partial_by_client_id: dict[str, float | None] = {}
        self.reject_next = 0
        #: Fractions for the next cancel requests: each finds its order filled (that fraction of it)
        #: at its stop price first (see Emulator.fill_before_next_cancel).
        self.fill_before_cancel: list[float] = []
        #: (side, fraction) for the next simple market orders of that side: each executes that fraction
        #: of its quantity on arrival and the venue expires the rest (see Emulator.expire_next_market_part).
        self.expire_after_part: list[tuple[str, float]] = []
        self._expiring: set[str] = set()  # ids of the orders that end so
        #: Seconds between an order's acceptance (the POST's answer) and its routing (and a market order's
        #: fill): a real venue takes a moment. 0 routes inside the POST.
        self.routing_delay = 0.0
        #: Seconds a routed order stays `pending_new` before the venue accepts it (`new`); 0: none.
        self.pending_new_delay = 0.0
        #: Seconds a cancel stays `pending_cancel` before it completes: 0 completes it inside the request,
        #: None holds it until `complete_pending_cancels()`.
        self.cancel_delay: float | None = 0.0
        self.pending_cancel_ids: list[str] = []  # ids of the orders whose cancel has not completed
        #: Crypto fees in basis points (Alpaca's tier 1): a limit order that rested pays the maker
        #: rate, every other execution the taker rate.
        self.crypto_maker_bps = Decimal(15)
        self.crypto_taker_bps = Decimal(25)
        self.fill_faults = FillFaults()  # injected slippage and late fills (see Emulator.slip_next_fills)

    # -- submission -------------------------------------------------------------------------------
    def submit(self, spec: OrderSpec) -> dict[str, Any]:
        with self.lock:
            asset = self._tradable_asset(spec.symbol)
            if spec.client_order_id and any(
                o.client_order_id == spec.client_order_id for o in self.orders.values()
            ):
                raise errors.unprocessable("client_order_id must be unique")
            self._check_crypto_order(asset, spec)
            self._check_time_in_force(asset, spec)
            self._check_opposite_open(asset, spec)
            self._check_funds(asset, spec)
            order = self._build(asset, spec)
            response = order.wire()
            if self.routing_delay > 0:
                _later(self.routing_delay, self._route_later, order)
            else:
                self._route(order)
                if order.status == "pending_new":  # routed inside the POST, not accepted by the venue yet
                    response = order.wire()
            return response

    def _route_later(self, order: Order) -> None:
        with self.lock:
            if order.status == "accepted":  # not canceled while it waited
                self._route(order)

    def _open_later(self, order: Order) -> None:
        with self.lock:
            if order.status == "pending_new":  # not canceled while it waited
                self._open(order)

    @staticmethod
    def _check_crypto_order(asset: Asset, spec: OrderSpec) -> None:
        """Alpaca takes simple market, limit and stop-limit orders for crypto: no stop, no trailing
        stop, no bracket, OCO or OTO (docs "Crypto Orders"; the type message is Alpaca's own)."""
        if not is_crypto(asset.symbol):
            return
        if spec.type not in CRYPTO_TYPES:
            raise errors.ApiError(422, "invalid order type for crypto order", 42210000)
        if spec.order_class != "simple":
            raise errors.ApiError(422, "invalid order class for crypto order", 42210000)

    @staticmethod
    def _check_time_in_force(asset: Asset, spec: OrderSpec) -> None:
        if is_crypto(asset.symbol):
            if spec.time_in_force not in ("gtc", "ioc"):
                raise errors.unprocessable("invalid crypto time_in_force")
        elif spec.notional is not None and spec.time_in_force != "day":
            raise errors.unprocessable("notional orders are only supported with day time_in_force")

    def _tradable_asset(self, symbol: str) -> Asset:
        asset = self._assets.find(symbol)
        if asset is None:
            raise errors.unprocessable(f'asset "{symbol}" not found')
        if asset.status != "active":
            raise errors.unprocessable(f"asset {asset.symbol} is not active")
        if not asset.tradable:
            raise errors.unprocessable(f"asset {asset.symbol} is not tradable")
        return asset

    def _build(self, asset: Asset, spec: OrderSpec) -> Order:
        now = self._now()
        order = Order(
            symbol=asset.symbol,
            asset_id=asset.id,
            asset_class=asset.asset_class,
            side=spec.side,
            type=spec.type,
            time_in_force=spec.time_in_force,
            qty=spec.qty,
            notional=spec.notional,
            created_at=now,
            client_order_id=spec.client_order_id or new_id(),
            order_class=spec.order_class,
            limit_price=spec.limit_price,
            stop_price=spec.stop_price,
            trail_price=spec.trail_price,
            trail_percent=spec.trail_percent,
            extended_hours=spec.extended_hours,
            position_intent=spec.position_intent,
            partial_fraction=self.partial_by_client_id.get(spec.client_order_id or "", self.partial_fraction),
        )
        ending = self.expire_after_part
        if ending and spec.type == "market" and spec.order_class == "simple" and ending[0][0] == spec.side:
            order.partial_fraction = ending.pop(0)[1]
            self._expiring.add(order.id)
        exit_side = "sell" if spec.side == "buy" else "buy"
        if spec.order_class in ("bracket", "oto"):
            for leg in (spec.take_profit, spec.stop_loss):
                if leg is not None:
                    order.legs.append(self._leg(order, leg.kind, exit_side, leg.limit_price, leg.stop_price))
        elif spec.order_class == "oco":
            assert spec.stop_loss is not None
            leg = self._leg(
                order, "stop_loss", spec.side, spec.stop_loss.limit_price, spec.stop_loss.stop_price
            )
            order.legs.append(leg)  # held: the take-profit (the parent) works, the stop waits its turn
        self.orders[order.id] = order
        for leg in order.legs:
            self.orders[leg.id] = leg
        return order

    def _leg(self, parent: Order, kind: str, side: str, limit: Decimal | None, stop: Decimal | None) -> Order:
        if kind == "take_profit":
            leg_type, stop = "limit", None
        else:
            leg_type = "stop_limit" if limit is not None else "stop"
        return Order(
            symbol=parent.symbol,
            asset_id=parent.asset_id,
            asset_class=parent.asset_class,
            side=side,
            type=leg_type,
            time_in_force=parent.time_in_force,
            qty=parent.qty,
            notional=None,
            created_at=parent.created_at,
            order_class=parent.order_class,
            limit_price=limit,
            stop_price=stop,
            status="held",
            parent_id=parent.id,
            partial_fraction=parent.partial_fraction,
        )

    def _route(self, order: Order) -> None:
        if self.reject_next > 0:
            self.reject_next -= 1
            self._finish(order, "rejected", "rejected")
            return
        if self.pending_new_delay > 0:
            order.status, order.updated_at = "pending_new", self._now()
            self._publish("pending_new", order)
            _later(self.pending_new_delay, self._open_later, order)
            return
        self._open(order)

    def _open(self, order: Order) -> None:
        """The venue accepted the order: it works (an OCO's stop leg stays `held`, armed)."""
        order.status, order.updated_at = "new", self._now()
        self._publish("new", order)
        if order.order_class == "oco":
            for leg in order.legs:
                leg.armed = True
        self._try_execute(order, arriving=True)
        for leg in order.legs:
            if leg.working:
                self._try_execute(leg, arriving=True)

    # -- funds checks -----------------------------------------------------------------------------
    def buying_power(self) -> Decimal:
        """Cash less what open buy orders would cost (a cash account, multiplier 1)."""
        reserved = Decimal(0)
        for order in self._open_roots():
            if order.side == "buy":
                reserved += self._estimated_cost(order)
        return self.portfolio.cash - reserved

    def _estimated_cost(self, order: Order | OrderSpec) -> Decimal:
        if order.notional is not None:
            filled = order.filled_cost if isinstance(order, Order) else Decimal(0)
            return order.notional - filled
        qty = order.remaining() if isinstance(order, Order) else order.qty
        assert qty is not None
        price = order.limit_price or self.price(order.symbol) or order.stop_price or Decimal(0)
        return qty * price

    def _check_opposite_open(self, asset: Asset, spec: OrderSpec) -> None:
        """Alpaca refuses an order opening one side while an order opening the other is open: "cannot
        open a long buy while a short sell order is open" (and the mirror). An order opens a side when
        it goes beyond what the position holds on the other (a buy while flat or long; a sell beyond
        the long)."""
        held = self.portfolio.qty(asset.symbol)
        for order in self._open_roots():
            if order.symbol != asset.symbol or order.side == spec.side or order.order_class == "oco":
                continue
            if spec.side == "buy" and held >= 0 and order.remaining() > held:
                raise errors.forbidden_trade("cannot open a long buy while a short sell order is open")
            if spec.side == "sell" and held <= 0 and order.remaining() > -held:
                raise errors.forbidden_trade("cannot open a short sell while a long buy order is open")

    def _check_funds(self, asset: Asset, spec: OrderSpec) -> None:
        if spec.side == "buy":
            if spec.order_class == "oco":
                return  # an OCO buy covers a short: it is an exit
            cost = self._estimated_cost(spec)
            power = self.buying_power()
            if cost > power:
                raise errors.forbidden_trade(
                    "insufficient buying power",
                    buying_power=num(power.quantize(Decimal("0.01"))),
                    cost_basis=num(cost.quantize(Decimal("0.01"))),
                )
            return
        if self.allow_shorting and asset.shortable and not is_crypto(asset.symbol):
            return
        existing = self.portfolio.qty(asset.symbol)
        held = self._held_for_sells(asset.symbol)
        available = max(existing - held, Decimal(0))
        requested = spec.qty if spec.qty is not None else Decimal(0)
        if requested > available:
            wanted, free = num(requested), num(available)
            message = f"insufficient qty available for order (requested: {wanted}, available: {free})"
            raise errors.forbidden_trade(
                message,
                available=num(available),
                existing_qty=num(existing),
                held_for_orders=num(held),
                symbol=position_symbol(asset.symbol),
            )

    def _held_for_sells(self, symbol: str) -> Decimal:
        held = Decimal(0)
        for order in self._open_roots():
            if order.symbol == symbol and order.side == "sell" and order.status != "held":
                held += order.remaining()  # a pending_new or done_for_day order still holds its shares
        # Active exit legs of filled brackets hold shares too (once per OCO pair).
        for parent in self.orders.values():
            active = [leg for leg in parent.legs if leg.working and leg.side == "sell"]
            if parent.symbol == symbol and active and parent.order_class != "oco":
                held += max(leg.remaining() for leg in active)
        return held

    def _open_roots(self) -> list[Order]:
        return [o for o in self.orders.values() if o.parent_id is None and o.is_open]

    # -- matching ---------------------------------------------------------------------------------
    def on_price(self, symbol: str, *, continuous: bool = False) -> None:
        """A new price for `symbol`: give every working order on it a chance to execute. ``continuous``:
        the market moved to it through every price between (within a bar), so a resting order it
        crossed executes at its own level (a limit at its limit, a stop at its stop), never at a
        better price than the one it was crossed at; otherwise (a print, a gap) at the price."""
        with self.lock:
            for order in list(self.orders.values()):
                if order.symbol == symbol and order.working:
                    self._try_execute(order, continuous=continuous)

    def expire_day_orders(self, now: datetime) -> None:
        """Day orders of stocks still open when their session has closed end ``expired`` (alpaca-docs
        "Time in Force": day "is only valid during Regular Trading Hours" and is canceled at the close if
        unfilled). An order placed outside a session is for the next one."""
        with self.lock:
            for order in list(self.orders.values()):
                if (
                    order.parent_id is None
                    and order.is_open
                    and order.time_in_force == "day"
                    and not is_crypto(order.symbol)
                    and now >= session_close_after(order.created_at)
                ):
                    self._finish(order, "expired", "expired")

    def match_all(self) -> None:
        with self.lock:
            for symbol in {o.symbol for o in self.orders.values() if o.is_open}:
                self.on_price(symbol)

    def price(self, symbol: str) -> Decimal | None:
        price = self._market.price(symbol)
        return Decimal(str(price)) if price is not None else None

    def _try_execute(self, order: Order, *, arriving: bool = False, continuous: bool = False) -> None:
        """Execute what ``order`` can at the current price. ``arriving``: it was just routed, so an
        execution now takes liquidity (taker); a limit order filled on a later price made it (maker).
        ``continuous``: the price was reached through every price between (see :meth:`on_price`)."""
        if not order.working:  # not routed yet, a dormant leg, or done for the day
            return
        price = self.price(order.symbol)
        if price is None:
            return  # no market yet: the order works until a price arrives
        price = self.fill_faults.price(order, price, arriving=arriving)
        if price is None:
            return  # an injected delay: it executes on the next price
        update_trail(order, price)
        triggered_before = order.triggered
        can_trade = marketable(order, price)
        if can_trade and continuous and not arriving:
            price = level(order, triggered_before) or price
        qty = (
            execution_qty(order, price, whole_shares=not is_crypto(order.symbol)) if can_trade else Decimal(0)
        )
        if order.time_in_force == "fok" and (not can_trade or qty < order.remaining(price)):
            self._finish(order, "canceled", "canceled")
            return
        if can_trade and qty > 0:
            self._execute(order, qty, price, maker=order.type == "limit" and not arriving)
        if order.time_in_force == "ioc" and order.is_open:
            self._finish(order, "canceled", "canceled")
        if order.id in self._expiring and order.filled_qty > 0:
            self._expiring.discard(order.id)
            if order.is_open:  # the venue ends the rest, as a day order ends at the close
                self._finish(order, "expired", "expired")

    def _execute(self, order: Order, qty: Decimal, price: Decimal, *, maker: bool = False) -> None:
        now = self._now()
        asset = self._assets.find(order.symbol)
        assert asset is not None
        rate = Decimal(0)
        if is_crypto(order.symbol):
            rate = (self.crypto_maker_bps if maker else self.crypto_taker_bps) / Decimal(10_000)
        position_qty, fee = self.portfolio.apply_fill(asset, order.side, qty, price, fee_rate=rate)
        order.filled_qty += qty
        order.filled_cost += qty * price
        order.updated_at = now
        done = order.remaining(price) <= 0
        if done:
            order.status, order.filled_at, order.status_before_cancel = "filled", now, None
        elif order.status != "pending_cancel":  # a part fill does not end a pending cancel
            order.status = "partially_filled"
        fill = Fill(
            new_id(),
            order.id,
            order.client_order_id,
            order.symbol,
            order.side,
            float(qty),
            float(price),
            float(position_qty),
            now,
            fee=float(fee),
            liquidity=("maker" if maker else "taker") if is_crypto(order.symbol) else "",
        )
        self.fills.append(fill)
        self._publish(
            "fill" if done else "partial_fill",
            order,
            execution_id=fill.execution_id,
            price=num(price),
            qty=num(qty),
            position_qty=num(position_qty),
        )
        self._cancel_siblings(order)
        if done and order.legs and order.order_class in ("bracket", "oto"):
            for leg in order.legs:
                leg.qty, leg.updated_at, leg.armed = order.filled_qty, now, True
                if order.order_class == "oto" or leg.type == "limit":  # a bracket's stop-loss stays held
                    leg.status = "new"
                    self._publish("new", leg)
            for leg in order.legs:
                self._try_execute(leg)

    def _cancel_siblings(self, order: Order) -> None:
        """One side of an OCO pair traded: the other side is canceled."""
        parent = self.orders.get(order.parent_id) if order.parent_id else order
        if parent is None:
            return
        if parent.order_class == "oco":
            group = [parent, *parent.legs]
        elif parent.order_class == "bracket" and order.parent_id:
            group = parent.legs
        else:
            return
        for sibling in group:
            if sibling is not order and sibling.is_open:
                self._finish(sibling, "canceled", "canceled")

    # -- replace ----------------------------------------------------------------------------------
    def replace(self, order_id: str, changes: ReplaceSpec) -> dict[str, Any]:
        """``PATCH /v2/orders/{order_id}``: a new order takes the open order's place, with the changed
        attributes and the others as they were (alpaca-docs, "Replace Order": "Each parameter overrides
        the corresponding attribute of the existing order"). The old one ends ``replaced`` with
        ``replaced_by``, the new one carries ``replaces`` and is routed like a submission (it executes
        at once if the market is already past its new price). Its client order id is the one given, or
        a new one. The emulator replaces simple orders only, for what is left of them."""
        with self.lock:
            order = self.orders.get(order_id)
            if order is None:
                raise errors.not_found("order not found")
            if not order.is_open or order.status == "pending_cancel":
                raise errors.ApiError(422, f'order is already in "{order.status}" state', 42210000)
            if order.parent_id or order.legs:
                raise errors.unprocessable("the emulator replaces simple orders only")
            if changes.client_order_id and any(
                o.client_order_id == changes.client_order_id for o in self.orders.values()
            ):
                raise errors.unprocessable("client_order_id must be unique")
            for name, value, applies in (
                ("limit_price", changes.limit_price, order.type in ("limit", "stop_limit")),
                ("stop_price", changes.stop_price, order.type in ("stop", "stop_limit")),
                ("trail", changes.trail, order.type == "trailing_stop"),
            ):
                if value is not None and not applies:
                    raise errors.unprocessable(f"{name} does not apply to a {order.type} order")
            now = self._now()
            trail = changes.trail
            by_price = trail is not None and order.trail_price is not None
            by_percent = trail is not None and order.trail_percent is not None
            successor = dataclasses.replace(
                order,
                id=new_id(),
                client_order_id=changes.client_order_id or new_id(),
                created_at=now,
                updated_at=None,
                status="accepted",
                qty=changes.qty if changes.qty is not None else order.remaining(),
                filled_qty=Decimal(0),
                filled_cost=Decimal(0),
                time_in_force=changes.time_in_force or order.time_in_force,
                limit_price=changes.limit_price if changes.limit_price is not None else order.limit_price,
                stop_price=changes.stop_price if changes.stop_price is not None else order.stop_price,
                trail_price=trail if by_price else order.trail_price,
                trail_percent=trail if by_percent else order.trail_percent,
                triggered=False,
                replaces=order.id,
                replaced_by=None,
                replaced_at=None,
                legs=[],
            )
            order.status, order.updated_at = "replaced", now
            order.replaced_at, order.replaced_by = now, successor.id
            self._publish("replaced", order)
            self.orders[successor.id] = successor
            response = successor.wire()
            self._route(successor)
            return response

    # -- cancel -----------------------------------------------------------------------------------
    def cancel(self, order_id: str) -> None:
        with self.lock:
            order = self.orders.get(order_id)
            if order is None:
                raise errors.not_found("order not found")
            if self.fill_before_cancel and order.is_open:
                self._fill_first(order, self.fill_before_cancel.pop(0))
                if order.legs and any(o.is_open for o in [order, *order.legs]):
                    for member in [order, *order.legs]:  # a partly filled OCO: the rest is canceled
                        if member.is_open:
                            self._finish(member, "canceled", "canceled")
                    return
            if not order.is_open:
                raise errors.ApiError(422, f'order is already in "{order.status}" state', 42210000)
            if order.status == "pending_cancel":
                return  # asked before: that cancel completes in its own time
            if self.cancel_delay == 0:
                self._complete_cancel(order)
                return
            order.status_before_cancel, order.status = order.status, "pending_cancel"
            order.updated_at = self._now()
            self._publish("pending_cancel", order)
            self.pending_cancel_ids.append(order.id)
            if self.cancel_delay is not None:
                _later(self.cancel_delay, self.complete_cancel, order.id)

    def complete_cancel(self, order_id: str) -> None:
        """The venue confirms a pending cancel: what is still open of the order (and its legs) ends
        `canceled`; an order that filled meanwhile keeps its fill."""
        with self.lock:
            if order_id in self.pending_cancel_ids:
                self.pending_cancel_ids.remove(order_id)
                self._complete_cancel(self.orders[order_id])

    def complete_pending_cancels(self) -> int:
        """Complete every pending cancel now; returns how many there were."""
        with self.lock:
            pending = list(self.pending_cancel_ids)
            for order_id in pending:
                self.complete_cancel(order_id)
            return len(pending)

    def _complete_cancel(self, order: Order) -> None:
        for member in [order, *order.legs]:
            if member.is_open:
                self._finish(member, "canceled", "canceled")

    def done_for_day(self, client_order_id: str) -> None:
        """The venue is done with the open order ``client_order_id`` (and its open legs) for the day:
        `done_for_day`, still listed open, executing nothing."""
        with self.lock:
            (order,) = [o for o in self._open_roots() if o.client_order_id == client_order_id]
            for member in [order, *order.legs]:
                if member.is_open:
                    member.status, member.updated_at = "done_for_day", self._now()
                    self._publish("done_for_day", member)

    def _fill_first(self, order: Order, fraction: float) -> None:
        """The race a cancel can lose: ``order`` (an OCO: its stop leg) executes ``fraction`` of what is
        left at its stop price (its limit price without one) before the cancel arrives."""
        target = order.legs[0] if order.order_class == "oco" and order.legs else order
        price = target.stop_price or target.limit_price
        assert price is not None, "fill_before_next_cancel needs a stop or limit order"
        qty = target.remaining() * Decimal(str(fraction))
        if not is_crypto(target.symbol):
            qty = qty.to_integral_value(rounding="ROUND_FLOOR")
        if qty > 0:
            self._execute(target, qty, price)

    def venue_ends(self, client_order_id: str, fraction: float) -> None:
        """The venue executes ``fraction`` of what is left of the order (an OCO: its stop leg) at its
        stop price, then ends the rest itself (canceled, as Alpaca cancels open orders on a corporate
        action or a halt)."""
        with self.lock:
            (order,) = [o for o in self._open_roots() if o.client_order_id == client_order_id]
            self._fill_first(order, fraction)
            for member in [order, *order.legs]:
                if member.is_open:
                    self._finish(member, "canceled", "canceled")

    def cancel_all(self) -> list[dict[str, Any]]:
        with self.lock:
            results = []
            for order in self._open_roots():
                self.cancel(order.id)
                results.append({"id": order.id, "status": 200, "body": order.wire()})
            return results

    def _finish(self, order: Order, status: str, event: str) -> None:
        now = self._now()
        order.status, order.updated_at, order.status_before_cancel = status, now, None
        if status == "canceled":
            order.canceled_at = now
        elif status == "expired":
            order.expired_at = now
        elif status == "rejected":
            order.failed_at = now
            for leg in order.legs:
                leg.status, leg.canceled_at, leg.updated_at = "canceled", now, now
        self._publish(event, order)

    # -- positions --------------------------------------------------------------------------------
    def close_position(self, symbol_or_id: str, qty: str | None, percentage: str | None) -> dict[str, Any]:
        with self.lock:
            asset = self._assets.find(symbol_or_id)
            position = self.portfolio.positions.get(asset.symbol) if asset else None
            if position is None:
                raise errors.not_found("position does not exist")
            size = abs(position.qty)
            if qty is not None:
                size = Decimal(qty)
            elif percentage is not None:
                size = (size * Decimal(percentage) / 100).quantize(Decimal("0.000000001"))
                if not is_crypto(position.symbol):
                    size = size.to_integral_value()
            spec = OrderSpec(
                symbol=position.symbol,
                side="sell" if position.qty > 0 else "buy",
                type="market",
                time_in_force="gtc" if is_crypto(position.symbol) else "day",
                qty=size,
                notional=None,
                order_class="simple",
                client_order_id=None,
                limit_price=None,
                stop_price=None,
                trail_price=None,
                trail_percent=None,
                extended_hours=False,
                position_intent=None,
                take_profit=None,
                stop_loss=None,
            )
            if spec.side == "buy":
                order = self._build(position.asset, spec)  # covering a short needs no buying-power check
                response = order.wire()
                self._route(order)
                return response
            return self.submit(spec)

    def close_all(self, cancel_orders: bool) -> list[dict[str, Any]]:
        with self.lock:
            if cancel_orders:
                self.cancel_all()
            results = []
            for position in list(self.portfolio.positions.values()):
                symbol = position_symbol(position.symbol)
                try:
                    body = self.close_position(position.symbol, None, None)
                    results.append({"symbol": symbol, "status": 200, "body": body})
                except errors.ApiError as exc:
                    results.append({"symbol": symbol, "status": exc.status, "body": exc.body})
            return results

    def position_wire(self, symbol: str) -> dict[str, Any]:
        position = self.portfolio.positions[symbol]
        held = self._held_for_sells(symbol) if position.qty > 0 else Decimal(0)
        return position.wire(self.price(symbol), held)

    # -- events -----------------------------------------------------------------------------------
    def _publish(self, event: str, order: Order, **details: Any) -> None:
        payload = {
            "event": event,
            "timestamp": format_ts(order.updated_at or self._now()),
            "order": order.wire(),
            **details,
        }
        for listener in list(self.listeners):
            listener(payload)


def _later(seconds: float, fn: Callable[..., None], *args: Any) -> None:
    """Call ``fn(*args)`` on a daemon timer thread after ``seconds`` (the venue's own pace)."""
    timer = threading.Timer(seconds, fn, args)
    timer.daemon = True
    timer.start()
