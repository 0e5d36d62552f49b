"""The portfolio's state and how events change it: the evolve half of the decide/evolve core.

``PortfolioState`` changes only through :func:`evolve` (one event at a time), so folding a run's events
rebuilds it exactly; the deciders in :mod:`tape.events.portfolio` read it and return new events.
Money is kept in integer cents (``cash_cents``): a fill moves cash by ``notional_cents(qty, price)`` and
the commission in cents, so the net P&L of closed trades sums to the change in cash, to the cent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tape.events.costs import cents, notional_cents, part_cents, sells_part
from tape.events.risk import (
    MarketContext,
)
from tape.events.schema import (
    Alert,
    BorrowFeeCharged,
    EquityMarked,
    Event,
    Fill,
    OrderCancelled,
    OrderIntent,
    OrderRejected,
    OrderSubmitted,
    PositionClosed,
    PositionOpened,
    RiskAccepted,
    RiskRejected,
    StopMoved,
)

NO_TARGET = float("inf")  # a disabled take-profit never triggers
NO_CONTEXT = MarketContext()


class Position:
    """An open position and what it cost. ``qty`` is signed: negative for a short, whose entry cost
    (``notional_cents`` of the signed quantity) is negative too, so P&L and equity need no side."""

    __slots__ = (
        "borrow_cents",
        "entry_commission_cents",
        "entry_cost_cents",
        "entry_price",
        "entry_slippage",
        "entry_ts",
        "extreme",
        "protective_id",
        "qty",
        "stop",
        "strategy",
        "symbol",
        "target",
    )

    def __init__(self, symbol: str, strategy: str, qty: float, entry_ts: int, entry_price: float) -> None:
        self.symbol, self.strategy, self.qty = symbol, strategy, qty
        self.entry_ts, self.entry_price = entry_ts, entry_price
        self.entry_cost_cents = notional_cents(qty, entry_price)
        self.entry_commission_cents = 0
        self.entry_slippage = 0.0
        self.borrow_cents = 0  # borrow fees a short has paid so far
        self.extreme = entry_price  # a trailing stop's best close since entry
        self.stop, self.target = 0.0, NO_TARGET
        self.protective_id = ""  # client order id of the resting stop/target (OCO) order


class Order:
    """A working order: a market order waiting for the next open, or a protective order (an OCO of
    stop and target; for a live crypto pair, whose broker has no OCO, a stop-limit)."""

    __slots__ = (
        "ceiling",
        "client_order_id",
        "floor",
        "intent_id",
        "limit",
        "order_type",
        "qty",
        "reason",
        "side",
        "stop",
        "strategy",
        "symbol",
        "target",
    )

    def __init__(self, e: OrderSubmitted) -> None:
        self.client_order_id, self.intent_id = e.client_order_id, e.intent_id
        self.symbol, self.side, self.qty = e.symbol, e.side, e.qty
        self.reason, self.strategy = e.reason, e.strategy
        self.order_type = e.order_type
        self.stop = e.stop_price or 0.0
        self.limit = e.limit_price or 0.0
        # An OCO's limit is its take-profit; a stop-limit's limit only bounds the stop's fill.
        self.target = e.limit_price if e.limit_price and e.order_type != "stop_limit" else NO_TARGET
        # The prices a bar's low may reach (floor) or its high (ceiling) to trigger it: a long's stop
        # and target, or, for a short's protective (a buy), its target and stop.
        if e.side == "buy" and e.reason == "protective":
            self.floor = self.target if self.target != NO_TARGET else -NO_TARGET
            self.ceiling = self.stop or NO_TARGET
        else:
            self.floor, self.ceiling = self.stop, self.target


class PortfolioState:
    """Cash, positions and working orders of one run. Mutated only by :func:`evolve`."""

    __slots__ = (
        "alerted",
        "cash_cents",
        "day_start_equity",
        "entry_fills",
        "halted_day",
        "intents",
        "market_orders",
        "orders_submitted",
        "positions",
        "protective",
        "realized_cents",
        "run_id",
        "start_cash_cents",
        "stop_distance",
        "trail_distance",
    )

    def __init__(self, run_id: str, cash: float) -> None:
        self.run_id = run_id
        self.cash_cents = self.start_cash_cents = cents(cash)
        self.realized_cents = 0
        self.positions: dict[str, Position] = {}
        self.market_orders: dict[str, Order] = {}  # symbol -> market order waiting for the next open
        self.protective: dict[str, Order] = {}  # symbol -> resting OCO stop/target
        self.entry_fills: dict[str, Fill] = {}  # symbol -> entry fill not yet turned into a position
        self.orders_submitted = 0
        self.intents = 0
        self.day_start_equity = cash
        self.halted_day = ""  # session day on which the daily-loss limit locked new entries
        self.alerted: set[tuple[str, str]] = set()  # (rule, day) alerts already raised
        self.stop_distance: dict[str, float] = {}  # symbol -> ATR stop distance accepted for its entry
        self.trail_distance: dict[str, float] = {}  # symbol -> ATR trailing distance accepted for its entry

    @property
    def cash(self) -> float:
        return self.cash_cents / 100.0

    def equity(self, prices: dict[str, float]) -> float:
        """Cash plus open positions marked at ``prices`` (symbol -> last price)."""
        value = self.cash_cents / 100.0
        for symbol, position in self.positions.items():
            value += position.qty * prices[symbol]
        return value

    def gross_exposure(self, prices: Mapping[str, float]) -> float:
        """Market value of every open position, long and short, marked at ``prices`` (symbol -> last
        price): what Reg-T margin is reckoned on."""
        return sum(abs(p.qty) * prices[s] for s, p in self.positions.items())

    def next_order_id(self) -> str:
        return f"{self.run_id}-o{self.orders_submitted + 1}"

    def next_intent_id(self) -> str:
        return f"{self.run_id}-i{self.intents + 1}"


# --------------------------------------------------------------------------- evolve


def _on_intent(state: PortfolioState, e: OrderIntent) -> None:
    state.intents += 1


def _on_submitted(state: PortfolioState, e: OrderSubmitted) -> None:
    state.orders_submitted += 1
    if e.order_type == "oco" or e.reason == "protective":
        state.protective[e.symbol] = Order(e)
        position = state.positions.get(e.symbol)
        if position is not None:
            position.protective_id = e.client_order_id
    else:
        state.market_orders[e.symbol] = Order(e)


def _on_cancelled(state: PortfolioState, e: OrderCancelled | OrderRejected) -> None:
    for book in (state.protective, state.market_orders):
        order = book.get(e.symbol)
        if order is not None and order.client_order_id == e.client_order_id:
            del book[e.symbol]
    position = state.positions.get(e.symbol)
    if position is not None and position.protective_id == e.client_order_id:
        position.protective_id = ""


def _on_rejected(state: PortfolioState, e: OrderRejected) -> None:
    # A refused order is no longer working, whichever book held it: a live broker can refuse a
    # protective order too (then the session, not a phantom order, watches the position).
    _on_cancelled(state, e)


def opens_position(state: PortfolioState, fill: Fill) -> bool:
    """Whether ``fill`` opens a position (a buy opens a long, a sell entry a short) rather than
    closing (part of) the one held: a fill on the side of what is held adds to it."""
    position = state.positions.get(fill.symbol)
    if position is None:
        return fill.side == "buy" or fill.reason == "entry"
    return (fill.side == "buy") == (position.qty > 0)


def _on_fill(state: PortfolioState, e: Fill) -> None:
    notional = notional_cents(e.qty, e.price)
    commission = cents(e.commission)
    position = state.positions.get(e.symbol)
    buy = e.side == "buy"
    state.cash_cents += -notional - commission if buy else notional - commission
    # as opens_position: an entry opens, a fill against what is held closes (part of) it
    if (buy or e.reason == "entry") if position is None else buy == (position.qty > 0):
        state.entry_fills[e.symbol] = e
    else:
        if position is not None and position.protective_id == e.client_order_id:
            # The protective traded, so it works no more: an exit for a remainder it left (a part fill)
            # must not cancel it again.
            position.protective_id = ""
    for book in (state.market_orders, state.protective):
        order = book.get(e.symbol)
        if order is not None and order.client_order_id == e.client_order_id:
            del book[e.symbol]


def _on_opened(state: PortfolioState, e: PositionOpened) -> None:
    fill = state.entry_fills.pop(e.symbol)
    position = Position(e.symbol, e.strategy, e.qty, fill.ts, e.entry_price)
    position.entry_commission_cents = cents(e.entry_commission)
    position.entry_slippage = fill.slippage
    position.stop = e.stop_price
    position.target = e.take_profit_price or NO_TARGET
    state.positions[e.symbol] = position
    state.stop_distance.pop(e.symbol, None)


def _on_closed(state: PortfolioState, e: PositionClosed) -> None:
    if not take_closing_part(state.positions[e.symbol], e.qty):
        del state.positions[e.symbol]
    state.realized_cents += cents(e.net_pnl)


def _on_borrow(state: PortfolioState, e: BorrowFeeCharged) -> None:
    fee = cents(e.fee)
    state.cash_cents -= fee
    state.realized_cents -= fee
    position = state.positions.get(e.symbol)
    if position is not None:
        position.borrow_cents += fee


def _on_marked(state: PortfolioState, e: EquityMarked) -> None:
    state.day_start_equity = e.equity


def _on_risk_rejected(state: PortfolioState, e: RiskRejected) -> None:
    if e.rule == "daily_loss":
        state.halted_day = str(int(e.checks.get("day", 0)))


def _on_risk_accepted(state: PortfolioState, e: RiskAccepted) -> None:
    distance = e.checks.get("stop_distance")
    if distance is not None:
        state.stop_distance[e.symbol] = distance
    trail = e.checks.get("trail_distance")
    if trail is not None:
        state.trail_distance[e.symbol] = trail


def _on_stop_moved(state: PortfolioState, e: StopMoved) -> None:
    order = state.protective.get(e.symbol)
    if order is not None and order.client_order_id == e.client_order_id:
        order.stop = e.stop_price
        if order.side == "buy":
            order.ceiling = e.stop_price
        else:
            order.floor = e.stop_price
    position = state.positions.get(e.symbol)
    if position is not None:
        position.stop, position.extreme = e.stop_price, e.extreme


def _on_alert(state: PortfolioState, e: Alert) -> None:
    state.alerted.add((e.rule, e.day))


def _ignore(state: PortfolioState, e: Any) -> None:
    return None


_EVOLVE: dict[type, Callable[[PortfolioState, Any], None]] = {
    OrderIntent: _on_intent,
    OrderSubmitted: _on_submitted,
    OrderCancelled: _on_cancelled,
    OrderRejected: _on_rejected,
    Fill: _on_fill,
    PositionOpened: _on_opened,
    PositionClosed: _on_closed,
    EquityMarked: _on_marked,
    BorrowFeeCharged: _on_borrow,
    StopMoved: _on_stop_moved,
    RiskRejected: _on_risk_rejected,
    RiskAccepted: _on_risk_accepted,
    Alert: _on_alert,
}


def evolve(state: PortfolioState, event: Event) -> PortfolioState:
    """Apply one event to the state (events the portfolio does not track are ignored)."""
    _EVOLVE.get(event.__class__, _ignore)(state, event)
    return state


def evolve_each(state: PortfolioState, events: list[Event]) -> list[Event]:
    """:func:`evolve` with each event in turn; returns ``events`` (a driver then records them)."""
    handler_of = _EVOLVE.get
    for event in events:
        handler_of(event.__class__, _ignore)(state, event)
    return events


def closing_part(position: Position, qty: float) -> tuple[int, int, float] | None:
    """What a sell of ``qty`` takes of ``position`` when it is only a part: its share of the entry cost
    and of the entry commission (whole cents, see :func:`events.costs.part_cents`) and of the entry
    slippage. None when the sell closes the whole position (within the symbol's quantity tolerance):
    then the close takes everything left, so the parts of a position sum to one whole close exactly.

    :func:`decide_fill` and :func:`evolve` both call it on the same position and quantity, so the
    cents a part's P&L booked are the cents the position loses, without carrying them on the event.
    """
    if not sells_part(position.symbol, abs(qty), abs(position.qty)):
        return None
    return (
        part_cents(position.entry_cost_cents, qty, position.qty),
        part_cents(position.entry_commission_cents, qty, position.qty),
        position.entry_slippage * qty / position.qty,
    )


def take_closing_part(position: Position, qty: float) -> bool:
    """Take a closing sell of ``qty`` off ``position``: the shares :func:`closing_part` gives it (the
    ones its P&L was booked against), so what stays is exactly what the part did not take. False when
    the sell closed the whole position (nothing stays). Every fold of closes (the portfolio's evolve,
    the P&L fold of events/pnl.py) reduces a position with this."""
    part = closing_part(position, qty)
    if part is None:
        return False
    cost, commission, slippage = part
    position.qty -= qty
    position.entry_cost_cents -= cost
    position.entry_commission_cents -= commission
    position.entry_slippage -= slippage
    return True
