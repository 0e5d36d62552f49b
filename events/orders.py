"""The order state machine and its intrabar fill rules: one definition for the simulated broker and
the live session.

States: ``new`` -> ``partially_filled`` -> ``filled``, or ``canceled`` / ``expired`` / ``rejected`` /
``replaced`` (a replaced order's successor starts as ``new``). :func:`advance` is the only way between
them and refuses any other move, so a driver cannot invent one.

Fill rules on one OHLC bar (pessimistic: when the bar cannot say what came first, the worse outcome
for the trader is assumed):

1. A market order fills at the bar's open.
2. A limit order fills only when the price trades *through* its limit (buy: low < limit; sell:
   high > limit), at the limit; with ``touch=True`` reaching it is enough. A bar that opens beyond the
   limit (buy: open <= limit) fills at the open, the better price.
3. A stop order triggers when the price reaches its stop (buy: high >= stop; sell: low <= stop) and
   fills at the stop; a bar that opens beyond the stop (a gap) fills at the open, the worse price.
4. A stop-limit triggers as a stop and then works as a limit at its limit price: triggered intrabar,
   it fills at the stop when the stop is within the limit; triggered by a gap past its limit (buy:
   open > limit) it does not fill on that bar and rests as a limit from the next bar on.
5. When a position's stop and target could both fill in one bar, the stop is assumed first.
6. A trailing stop's level moves only on completed bars (a long's from the highest close since entry,
   a short's from the lowest) and never back; on the next bar it fills as a stop at that level (rule 3).
   Its distance is a percent of that close, a price amount, or k x ATR at that bar.
7. Time in force: ``day`` works for the bars of the session it was placed for (the next one for an
   order placed at a close) and expires at that session's end; ``gtc`` works until filled, canceled or,
   with ``expire_bars``, after that many bars unfilled.
8. A time exit closes a position with a market order at the close of its Nth bar held (it fills at
   the next open, rule 1).
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

Status = Literal["new", "partially_filled", "filled", "canceled", "expired", "rejected", "replaced"]
OrderType = Literal["market", "limit", "stop", "stop_limit"]

# status -> the statuses it may move to (a done order moves nowhere)
TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"partially_filled", "filled", "canceled", "expired", "rejected", "replaced"}),
    "partially_filled": frozenset({"partially_filled", "filled", "canceled", "expired", "replaced"}),
    "filled": frozenset(),
    "canceled": frozenset(),
    "expired": frozenset(),
    "rejected": frozenset(),
    "replaced": frozenset(),
}
DONE = frozenset(s for s, moves in TRANSITIONS.items() if not moves)


class OrderTransitionError(ValueError):
    """A move the state machine does not allow (e.g. a fill after a cancel)."""


def advance(status: str, to: str) -> str:
    """The status after moving from ``status`` to ``to``; raises on a move the machine forbids."""
    if to not in TRANSITIONS.get(status, frozenset()):
        raise OrderTransitionError(f"an order cannot go from {status} to {to}")
    return to


class Bar(NamedTuple):
    """One OHLC bar as the fill rules read it."""

    open: float
    high: float
    low: float
    close: float


class Working(NamedTuple):
    """An order working at a broker: its type, side, prices and time in force."""

    side: Literal["buy", "sell"]
    order_type: OrderType = "market"
    limit: float = math.nan
    stop: float = math.nan
    tif: Literal["day", "gtc"] = "gtc"
    expire_bars: int = 0  # gtc: expire after this many bars unfilled (0: never)
    touch: bool = False  # a limit fills on reaching its price (default: it must trade through)
    triggered: bool = False  # a stop-limit whose stop has triggered (it works as a limit)


def limit_fill(side: str, limit: float, bar: Bar, *, touch: bool = False) -> float | None:
    """Rule 2: the fill price of a limit order on ``bar``, or None."""
    if side == "buy":
        if bar.open <= limit:
            return bar.open
        reached = bar.low <= limit if touch else bar.low < limit
    else:
        if bar.open >= limit:
            return bar.open
        reached = bar.high >= limit if touch else bar.high > limit
    return limit if reached else None


def stop_fill(side: str, stop: float, bar: Bar) -> float | None:
    """Rule 3: the fill price of a stop order on ``bar``, or None."""
    if side == "buy":
        if bar.open >= stop:
            return bar.open
        return stop if bar.high >= stop else None
    if bar.open <= stop:
        return bar.open
    return stop if bar.low <= stop else None


def stop_limit_step(order: Working, bar: Bar) -> tuple[float | None, bool]:
    """Rule 4: (fill price or None, triggered) of a stop-limit on ``bar``."""
    if order.triggered:
        return limit_fill(order.side, order.limit, bar, touch=order.touch), True
    buy = order.side == "buy"
    if stop_fill(order.side, order.stop, bar) is None:
        return None, False
    gapped = bar.open >= order.stop if buy else bar.open <= order.stop
    if gapped:
        within = bar.open <= order.limit if buy else bar.open >= order.limit
        return (bar.open if within else None), True
    within = order.stop <= order.limit if buy else order.stop >= order.limit
    return (order.stop if within else None), True


def fill_on(order: Working, bar: Bar) -> tuple[float | None, Working]:
    """The fill price of a working order on ``bar`` (None: not this bar) and the order after it."""
    if order.order_type == "market":
        return bar.open, order
    if order.order_type == "limit":
        return limit_fill(order.side, order.limit, bar, touch=order.touch), order
    if order.order_type == "stop":
        return stop_fill(order.side, order.stop, bar), order
    price, triggered = stop_limit_step(order, bar)
    return price, order._replace(triggered=triggered)


def expires_after(order: Working, bars_worked: int, *, session_ended: bool) -> bool:
    """Rule 7: whether an unfilled order expires after working ``bars_worked`` bars, the last of
    which ended a session when ``session_ended``."""
    if order.tif == "day":
        return session_ended
    return order.expire_bars > 0 and bars_worked >= order.expire_bars


def entry_prices(
    order_type: str, side: str, close: float, offset_pct: float, band_pct: float
) -> tuple[float, float]:
    """(limit, stop) of an entry priced from the signal bar's ``close``: a limit ``offset_pct`` better
    than the close (buy below, sell above), a stop ``offset_pct`` beyond it (buy above, sell below), a
    stop-limit's limit ``band_pct`` beyond its stop, each as an order can carry it (:func:`order_price`).
    NaN where the type has none."""
    sign = 1.0 if side == "buy" else -1.0
    if order_type == "limit":
        return order_price(close * (1.0 - sign * offset_pct / 100.0)), math.nan
    if order_type in ("stop", "stop_limit"):
        stop = close * (1.0 + sign * offset_pct / 100.0)
        limit = stop * (1.0 + sign * band_pct / 100.0) if order_type == "stop_limit" else math.nan
        return order_price(limit), order_price(stop)
    return math.nan, math.nan


def order_price(price: float) -> float:
    """A price as an order can carry it: whole cents at or above $1, hundredths of a cent below (the
    sub-penny rule Alpaca applies to limit and stop prices, which refuses finer ones). NaN stays NaN."""
    if math.isnan(price):
        return price
    return round(price, 2 if price >= 1.0 else 4)


class Trail(NamedTuple):
    """A trailing stop: its extreme close since entry and its level (rule 6)."""

    side: Literal["long", "short"]
    extreme: float
    level: float


def trail_start(side: str, entry_price: float, *, pct: float = 0.0, distance: float = 0.0) -> Trail:
    """A trailing stop placed at entry: ``pct`` % of the entry price (Alpaca's trail_percent) or a
    ``distance`` (a price amount, or k x ATR) below a long, above a short."""
    return trail_after(
        Trail("long" if side == "long" else "short", entry_price, math.nan),
        entry_price,
        pct=pct,
        distance=distance,
    )


def trail_after(trail: Trail, close: float, *, pct: float = 0.0, distance: float = 0.0) -> Trail:
    """Rule 6: the trail after a completed bar closing at ``close``: its extreme (a long's highest
    close, a short's lowest) moves with the close, and the level sits ``pct`` % of the extreme away
    (as Alpaca's trail_percent off its high-water mark) or ``distance`` away (that bar's amount or
    k x ATR); the level never moves back."""
    long = trail.side == "long"
    extreme = max(trail.extreme, close) if long else min(trail.extreme, close)
    if pct > 0:
        level = extreme * (1.0 - pct / 100.0) if long else extreme * (1.0 + pct / 100.0)
    else:
        level = extreme - distance if long else extreme + distance
    if trail.level == trail.level:  # never back
        level = max(trail.level, level) if long else min(trail.level, level)
    return Trail(trail.side, extreme, level)


def trail_distance(
    close: float, *, amount: float = 0.0, atr_multiple: float = 0.0, atr: float = math.nan
) -> float:
    """A trailing stop's distance at a bar besides a percent: a price ``amount``, or ``atr_multiple``
    x the bar's ATR."""
    if amount > 0:
        return amount
    return atr_multiple * atr


class Outcome(NamedTuple):
    """What became of an order worked over bars: its final status, the bar it ended on, its price."""

    status: str
    bar: int
    price: float | None


def work(order: Working, bars: list[Bar], session_ends: list[bool] | None = None) -> Outcome:
    """Work ``order`` over ``bars`` (the first is the bar after it was placed) through the state
    machine: filled at the first bar a rule fills it, expired per its time in force, else still new."""
    status = "new"
    ends = session_ends if session_ends is not None else [True] * len(bars)
    for k, bar in enumerate(bars):
        price, order = fill_on(order, bar)
        if price is not None:
            return Outcome(advance(status, "filled"), k, price)
        if expires_after(order, k + 1, session_ended=ends[k]):
            return Outcome(advance(status, "expired"), k, None)
    return Outcome(status, len(bars) - 1, None)


def trail_exit(
    side: str, entry_price: float, bars: list[Bar], *, pct: float = 0.0, distances: list[float] | None = None
) -> Outcome:
    """A trailing stop placed at entry (filled at ``bars[0]``'s open), worked bar by bar: each bar is
    checked against the level set by the bars completed before it (rule 6), then its close moves the
    level (``pct`` % of the extreme, or ``distances[k]``, that bar's distance)."""
    gaps = distances if distances is not None else [0.0] * len(bars)
    trail = trail_start(side, entry_price, pct=pct, distance=gaps[0])
    exit_side = "sell" if side == "long" else "buy"
    for k, bar in enumerate(bars):
        if k > 0:
            price = stop_fill(exit_side, trail.level, bar)
            if price is not None:
                return Outcome("filled", k, price)
        trail = trail_after(trail, bar.close, pct=pct, distance=gaps[k])
    return Outcome("new", len(bars) - 1, None)


def time_exit(bars: list[Bar], hold_bars: int) -> Outcome:
    """Rule 8: a position entered at ``bars[0]``'s open is exited by a market order decided at the close
    of its ``hold_bars``-th bar, filled at the next bar's open."""
    decided = hold_bars - 1
    if decided + 1 >= len(bars):
        return Outcome("new", len(bars) - 1, None)
    return Outcome("filled", decided + 1, bars[decided + 1].open)
