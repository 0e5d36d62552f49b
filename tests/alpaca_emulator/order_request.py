"""`POST /v2/orders` bodies: parsed and validated into an `OrderSpec` the way Alpaca validates them.

Validation failures are 422 with code 40010001, as Alpaca answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import unprocessable

SIDES = ("buy", "sell")
TYPES = ("market", "limit", "stop", "stop_limit", "trailing_stop")
TIME_IN_FORCE = ("day", "gtc", "opg", "cls", "ioc", "fok")
CLASSES = ("simple", "bracket", "oco", "oto", "")


@dataclass(frozen=True)
class LegSpec:
    kind: str  # take_profit | stop_loss
    limit_price: Decimal | None
    stop_price: Decimal | None


@dataclass(frozen=True)
class OrderSpec:
    symbol: str
    side: str
    type: str
    time_in_force: str
    qty: Decimal | None
    notional: Decimal | None
    order_class: str
    client_order_id: str | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    trail_price: Decimal | None
    trail_percent: Decimal | None
    extended_hours: bool
    position_intent: str | None
    take_profit: LegSpec | None
    stop_loss: LegSpec | None


def _decimal(body: dict[str, Any], name: str) -> Decimal | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise unprocessable(f"invalid {name}") from None


def _choice(body: dict[str, Any], name: str, allowed: tuple[str, ...], default: str | None = None) -> str:
    value = body.get(name, default)
    if value is None:
        raise unprocessable(f"{name} is required")
    if value not in allowed:
        raise unprocessable(f"invalid {name}")
    return value


def parse_order(body: Any) -> OrderSpec:
    if not isinstance(body, dict):
        raise unprocessable("request body format is invalid")
    symbol = body.get("symbol")
    if not symbol:
        raise unprocessable("symbol is required")
    qty, notional = _decimal(body, "qty"), _decimal(body, "notional")
    if qty is None and notional is None:
        raise unprocessable("qty or notional is required")
    if qty is not None and notional is not None:
        raise unprocessable("only one of qty or notional can be specified")
    if qty is not None and qty <= 0:
        raise unprocessable("qty must be > 0")
    if notional is not None and notional <= 0:
        raise unprocessable("notional must be > 0")
    side = _choice(body, "side", SIDES)
    order_type = _choice(body, "type", TYPES)
    tif = _choice(body, "time_in_force", TIME_IN_FORCE)
    order_class = _choice(body, "order_class", CLASSES, "simple") or "simple"
    take_profit = _leg(body, "take_profit")
    limit_price = _decimal(body, "limit_price")
    if order_class == "oco" and limit_price is None and take_profit is not None:
        limit_price = take_profit.limit_price  # an OCO's own limit is its take-profit
    spec = OrderSpec(
        symbol=symbol,
        side=side,
        type=order_type,
        time_in_force=tif,
        qty=qty,
        notional=notional,
        order_class=order_class,
        client_order_id=body.get("client_order_id") or None,
        limit_price=limit_price,
        stop_price=_decimal(body, "stop_price"),
        trail_price=_decimal(body, "trail_price"),
        trail_percent=_decimal(body, "trail_percent"),
        extended_hours=bool(body.get("extended_hours") or False),
        position_intent=body.get("position_intent"),
        take_profit=take_profit,
        stop_loss=_leg(body, "stop_loss"),
    )
    _check_prices(spec)
    _check_class(spec)
    return spec


def _leg(body: dict[str, Any], kind: str) -> LegSpec | None:
    raw = body.get(kind)
    if not raw:
        return None
    if not isinstance(raw, dict):
        raise unprocessable(f"invalid {kind}")
    return LegSpec(kind, _decimal(raw, "limit_price"), _decimal(raw, "stop_price"))


def _check_prices(spec: OrderSpec) -> None:
    needs_limit = spec.type in ("limit", "stop_limit")
    needs_stop = spec.type in ("stop", "stop_limit")
    if needs_limit and spec.limit_price is None:
        raise unprocessable("limit_price is required")
    if needs_stop and spec.stop_price is None:
        raise unprocessable("stop_price is required")
    if not needs_limit and spec.limit_price is not None:
        raise unprocessable(f"limit_price is not allowed for {spec.type} orders")
    if not needs_stop and spec.stop_price is not None:
        raise unprocessable(f"stop_price is not allowed for {spec.type} orders")
    if spec.type == "trailing_stop" and (spec.trail_price is None) == (spec.trail_percent is None):
        raise unprocessable("trailing_stop orders require exactly one of trail_price or trail_percent")
    for name in ("limit_price", "stop_price", "trail_price", "trail_percent"):
        value = getattr(spec, name)
        if value is not None and value <= 0:
            raise unprocessable(f"{name} must be > 0")
    if spec.notional is not None and spec.type != "market":
        raise unprocessable("notional orders are only supported for market orders")


def _check_class(spec: OrderSpec) -> None:
    tp, sl = spec.take_profit, spec.stop_loss
    if spec.order_class in ("bracket", "oco"):
        if tp is None or tp.limit_price is None:
            raise unprocessable(f"{spec.order_class} orders require take_profit.limit_price")
        if sl is None or sl.stop_price is None:
            raise unprocessable(f"{spec.order_class} orders require stop_loss.stop_price")
        low, high = (sl.stop_price, tp.limit_price) if spec.side == "buy" else (tp.limit_price, sl.stop_price)
        if spec.order_class == "oco":
            # An OCO exits a position: selling, the take-profit is above the stop.
            low, high = (
                (tp.limit_price, sl.stop_price) if spec.side == "buy" else (sl.stop_price, tp.limit_price)
            )
            if spec.type != "limit":
                raise unprocessable("oco orders must be limit orders")
        if low >= high:
            raise unprocessable("take_profit.limit_price must be on the profit side of stop_loss.stop_price")
    elif spec.order_class == "oto":
        if tp is None and sl is None:
            raise unprocessable("oto orders require take_profit or stop_loss")
    elif tp is not None or sl is not None:
        raise unprocessable("take_profit and stop_loss are only allowed for bracket, oco and oto orders")
    if spec.order_class != "simple" and spec.qty is None:
        raise unprocessable("notional is not allowed for advanced orders")


@dataclass(frozen=True)
class ReplaceSpec:
    """A ``PATCH /v2/orders/{order_id}`` body: the attributes to change (None: keep)."""

    qty: Decimal | None
    time_in_force: str | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    trail: Decimal | None
    client_order_id: str | None


def parse_replace(body: Any) -> ReplaceSpec:
    """A replace request's body, validated as Alpaca validates it (positive prices and quantity)."""
    if not isinstance(body, dict):
        raise unprocessable("invalid body")
    values = {name: _decimal(body, name) for name in ("qty", "limit_price", "stop_price", "trail")}
    for name, value in values.items():
        if value is not None and value <= 0:
            raise unprocessable(f"{name} must be greater than 0")
    tif = body.get("time_in_force")
    if tif is not None and tif not in TIME_IN_FORCE:
        raise unprocessable("invalid time_in_force")
    client_order_id = body.get("client_order_id")
    return ReplaceSpec(
        qty=values["qty"],
        time_in_force=tif,
        limit_price=values["limit_price"],
        stop_price=values["stop_price"],
        trail=values["trail"],
        client_order_id=str(client_order_id) if client_order_id else None,
    )
