"""Live against the model: the P&L gap between a session and its re-run on the model, by cause.

Trades are matched on what decided them (symbol, the bar the entry was decided on). For a trade both
made, the gap splits exactly into: fees (charged vs modelled), partial fills (the quantity the broker
did not fill, at the model's prices), latency (the model's price at the bar the live fill came, counted
in cycles after its decision beyond the session's usual, against the model's own bar) and slippage (the
live price against that). A trade only the model made is lost to a rejected/canceled/expired order when
live's order for that decision ended so, or to a late or missed bar when live received its bar too late
to trade on it. Positions open at the end count as trades closed at the last recorded close.
Whatever none of these explains, and cent rounding, is ``unexplained``: causes sum to the gap to the
cent. Pure.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import NamedTuple

from tape.events.costs import cents
from tape.events.pnl import pnl_by_symbol
from tape.events.schema import (
    BarReceived,
    CycleCompleted,
    Event,
    Fill,
    OrderCancelled,
    OrderIntent,
    OrderRejected,
    OrderSubmitted,
    PositionClosed,
    PositionOpened,
)

CAUSES = (
    "entry_slippage",
    "exit_slippage",
    "latency",
    "rejected_canceled_expired",
    "partial_fills",
    "late_or_missed_bars",
    "fees",
    "unexplained",
)
NOT_AT_BROKER = ("broker", "end of data")  # logged cancels of orders the broker never worked or ended


class Trade(NamedTuple):
    """One closed position, with what decided it and how late its fills came."""

    symbol: str
    decided_ts: int  # the bar the entry was decided on
    qty: float
    entry_price: float
    exit_price: float
    exit_reason: str
    commission: float
    net_pnl: float
    exit_ts: int  # when the position closed (the model: the bar its exit filled at)
    entry_delay: int  # cycles between the entry order and its fill (live), 0 on the model
    exit_delay: int


class Book(NamedTuple):
    """A run's trades, its ended entry orders and the bars it could not trade on."""

    trades: dict[tuple[str, int], Trade]
    ended: dict[tuple[str, int], str]  # (symbol, decided ts) -> why the entry order ended unfilled
    late_bars: set[tuple[str, int]]


class Attribution(NamedTuple):
    """The gap and its causes, in cents, and each trade's part."""

    live_pnl: int
    model_pnl: int
    causes: dict[str, int]
    per_trade: list[dict[str, object]]

    @property
    def gap(self) -> int:
        return self.live_pnl - self.model_pnl


class _Walk:
    """State while a run's events are read in order."""

    def __init__(self) -> None:
        self.cycle = 0
        self.decided: dict[str, int] = {}  # intent id -> the bar it was decided on
        self.orders: dict[str, tuple[int, int]] = {}  # client order id -> (decided ts, cycle sent)
        self.entry: dict[str, tuple[int, int]] = {}  # symbol -> (decided ts, entry delay) of what is held
        self.exit_delay: dict[str, int] = {}
        self.book = Book({}, {}, set())
        self.cycle_bars: list[BarReceived] = []
        self.held: dict[str, tuple[float, float, float]] = {}  # symbol -> qty, entry price, commission


def book_of(events: Iterable[Event], marks: dict[str, tuple[int, float]]) -> Book:
    """A run's trades keyed by (symbol, decided ts), its entry orders that ended unfilled, and the
    bars it received too late to trade on (all but the newest timestamp of a cycle's catch-up). A
    position still open counts as a trade closed at its symbol's mark (ts, last close)."""
    walk = _Walk()
    for event in events:
        _step(walk, event)
    _close_cycle(walk)
    for symbol, (qty, price, commission) in walk.held.items():
        decided, delay = walk.entry.get(symbol, (0, 0))
        ts, last = marks.get(symbol, (0, price))
        net = qty * (last - price) - commission
        walk.book.trades[(symbol, decided)] = Trade(
            symbol, decided, qty, price, last, "open", commission, net, ts, delay, 0
        )
    return walk.book


def _step(walk: _Walk, e: Event) -> None:
    if isinstance(e, OrderIntent):
        walk.decided[e.intent_id] = e.ts
    elif isinstance(e, OrderSubmitted):
        walk.orders[e.client_order_id] = (walk.decided.get(e.intent_id, e.ts), walk.cycle)
    elif isinstance(e, Fill):
        decided, sent = walk.orders.get(e.client_order_id, (e.ts, walk.cycle))
        if e.side == "buy":
            walk.entry.setdefault(e.symbol, (decided, walk.cycle - sent))
        elif e.reason in ("signal", "end", "flatten", "daily_loss"):  # protective exits rest: no delay
            walk.exit_delay[e.symbol] = walk.cycle - sent
    elif isinstance(e, OrderRejected | OrderCancelled) and (
        isinstance(e, OrderRejected) or e.reason not in NOT_AT_BROKER
    ):
        decided, _ = walk.orders.get(e.client_order_id, (e.ts, 0))
        if e.symbol not in walk.entry:
            walk.book.ended[(e.symbol, decided)] = e.reason
    elif isinstance(e, PositionOpened):
        walk.held[e.symbol] = (e.qty, e.entry_price, e.entry_commission)
    elif isinstance(e, PositionClosed):
        walk.held.pop(e.symbol, None)
        decided, entry_delay = walk.entry.pop(e.symbol, (e.entry_ts, 0))
        walk.book.trades[(e.symbol, decided)] = Trade(
            e.symbol, decided, e.qty, e.entry_price, e.exit_price, e.exit_reason, e.commission,
            e.net_pnl, e.ts, entry_delay, walk.exit_delay.pop(e.symbol, 0),
        )  # fmt: skip
    elif isinstance(e, BarReceived):
        walk.cycle_bars.append(e)
    elif isinstance(e, CycleCompleted):
        _close_cycle(walk)
        walk.cycle += 1


def _close_cycle(walk: _Walk) -> None:
    """The bars one cycle logged: only its newest timestamp was traded on."""
    if walk.cycle_bars:
        newest = max(b.ts for b in walk.cycle_bars)
        walk.book.late_bars.update((b.symbol, b.ts) for b in walk.cycle_bars if b.ts != newest)
    walk.cycle_bars = []


class _Bars:
    """The recorded bars' opens by symbol: the model's price at any bar, relative to another."""

    def __init__(self, events: Iterable[Event]) -> None:
        self.ts: dict[str, list[int]] = {}
        self.open: dict[str, list[float]] = {}
        self.marks: dict[str, tuple[int, float]] = {}  # symbol -> its last bar's (ts, close)
        for e in events:
            if isinstance(e, BarReceived):
                self.ts.setdefault(e.symbol, []).append(e.ts)
                self.open.setdefault(e.symbol, []).append(e.open)
                self.marks[e.symbol] = (e.ts, e.close)

    def later(self, symbol: str, price: float, at_or_after: int, bars: int) -> float:
        """``price`` modelled at the bar at or after ``at_or_after`` moved ``bars`` bars later."""
        times, opens = self.ts.get(symbol, []), self.open.get(symbol, [])
        k = bisect.bisect_left(times, at_or_after)
        if bars <= 0 or k + bars >= len(opens) or opens[k] == 0:
            return price
        return price * opens[k + bars] / opens[k]


def _matched(live: Trade, model: Trade, bars: _Bars, late_in: int, late_out: int) -> dict[str, float]:
    """A trade both made, its gap split exactly (in dollars, before rounding)."""
    entry_at = bars.later(live.symbol, model.entry_price, live.decided_ts + 1, late_in)
    exit_at = model.exit_price
    if live.exit_reason == "signal":
        exit_at = bars.later(live.symbol, model.exit_price, model.exit_ts, late_out)
    q = live.qty
    return {
        "partial_fills": (live.qty - model.qty) * (model.exit_price - model.entry_price),
        "latency": q * (model.entry_price - entry_at) + q * (exit_at - model.exit_price),
        "entry_slippage": q * (entry_at - live.entry_price),
        "exit_slippage": q * (live.exit_price - exit_at),
        "fees": model.commission - live.commission,
    }


def _one_sided(key: tuple[str, int], live: Trade | None, model: Trade | None, book: Book) -> dict[str, float]:
    """A trade only one run made: the model's lost to an ended order or a late bar, or unexplained."""
    if model is not None:
        cause = (
            "rejected_canceled_expired"
            if key in book.ended
            else "late_or_missed_bars"
            if key in book.late_bars
            else "unexplained"
        )
        return {cause: -model.net_pnl}
    assert live is not None
    return {"unexplained": live.net_pnl}


def attribute(live_events: list[Event], model_events: list[Event]) -> Attribution:
    """The live-vs-model P&L gap of a session (live) and its re-run on the model, by cause, in cents."""
    bars = _Bars(live_events)
    live, model = book_of(live_events, bars.marks), book_of(model_events, bars.marks)
    usual_in = min((t.entry_delay for t in live.trades.values()), default=0)
    usual_out = min((t.exit_delay for t in live.trades.values() if t.exit_reason == "signal"), default=0)
    totals: dict[str, float] = dict.fromkeys(CAUSES, 0.0)
    per_trade: list[dict[str, object]] = []
    for key in sorted(live.trades.keys() | model.trades.keys(), key=lambda k: (k[1], k[0])):
        a, b = live.trades.get(key), model.trades.get(key)
        if a is not None and b is not None:
            part = _matched(a, b, bars, a.entry_delay - usual_in, a.exit_delay - usual_out)
        else:
            part = _one_sided(key, a, b, live)
        for cause, amount in part.items():
            totals[cause] += amount
        per_trade.append(
            {"symbol": key[0], "decided_ts": key[1], **{k: round(v, 2) for k, v in part.items()}}
        )
    last = {symbol: close for symbol, (_, close) in bars.marks.items()}
    live_pnl = sum(cents(r["total_pnl"]) for r in pnl_by_symbol(live_events, last).values())
    model_pnl = sum(cents(r["total_pnl"]) for r in pnl_by_symbol(model_events, last).values())
    causes = {k: cents(v) for k, v in totals.items()}
    causes["unexplained"] += (live_pnl - model_pnl) - sum(causes.values())  # rounding, to the cent
    return Attribution(live_pnl, model_pnl, causes, per_trade)
