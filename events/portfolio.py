"""The portfolio's decide/evolve core, shared by the backtest loop, the live PortfolioActor and replay.

``PortfolioState`` changes only through :func:`evolve` (one event at a time), so folding a run's events
rebuilds it exactly. The ``decide_*`` functions read the state and return new events; they never
change it. Drivers alternate: ``events = decide_*(state, ...)``, then ``evolve(state, e)`` for each.

Money is kept in integer cents (``cash_cents``): a fill moves cash by ``notional_cents(qty, price)`` and
the commission in cents, so the net P&L of closed trades sums to the change in cash, to the cent.
The simulated broker lives here too (:func:`decide_open_fills`, :func:`decide_protective_exits`): it is
a pure function of the state and a bar, which is what lets a backtest and a sim-broker live run agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from tape.events.correlation import ReturnWindows
from tape.events.costs import CostModel, cents, notional_cents, part_cents, sells_part
from tape.events.entry_rules import EntryCase, SizedEntry, first_block, size_entry
from tape.events.orders import entry_prices, trail_start
from tape.events.risk import (
    MarketContext,
    RiskConfig,
    protective_exit,
    protective_prices,
    short_protective_exit,
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

    @property
    def gross_exposure(self) -> float:
        """Market value of every open position, long and short, at its entry price."""
        return sum(abs(p.entry_cost_cents) for p in self.positions.values()) / 100.0

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


# --------------------------------------------------------------------------- decide


class Desk:
    """The fixed rules a portfolio decides with: risk limits, cost model, names."""

    __slots__ = ("allowed_regimes", "cost", "entry_order", "risk", "trail_atr", "trailing")

    def __init__(self, risk: RiskConfig, cost: CostModel) -> None:
        self.risk, self.cost = risk, cost
        # read once, not on every entry or fill
        self.allowed_regimes = risk.allowed_regimes
        self.entry_order: str = risk.option("entry_order", "market")
        self.trailing = risk.trailing
        self.trail_atr: float = risk.option("trail_atr", 0.0)


def decide_entry(
    state: PortfolioState,
    desk: Desk,
    *,
    ts: int,
    day: int,
    symbol: str,
    strategy: str,
    price: float,
    equity: float,
    context: MarketContext = NO_CONTEXT,
    size_factor: float = 1.0,
    side: str = "buy",
) -> list[Event]:
    """An entry signal at ``price`` (the bar's close), ``side`` buy (long) or sell (short): size it,
    run the risk gate (events/entry_rules.py), place the entry order. Nothing while the symbol has a
    position or a working order on the same side. ``day`` is the session the daily-loss limit counts
    in; ``context`` carries ATR and average volume for ATR sizing and the liquidity rules."""
    if symbol in state.positions:
        return []
    working = state.market_orders.get(symbol)
    if working is not None:
        return _opposite_working(
            state, working, ts=ts, symbol=symbol, strategy=strategy, side=side, price=price
        )
    buying_power = _short_buying_power(state, desk.risk, equity) if side == "sell" else state.cash
    sized = size_entry(
        desk.risk,
        desk.cost,
        symbol=symbol,
        price=price,
        equity=equity,
        cash=buying_power,
        context=context,
        size_factor=size_factor,
        side=side,
    )
    intent_id = state.next_intent_id()
    intent = OrderIntent(
        ts=ts,
        intent_id=intent_id,
        symbol=symbol,
        strategy=strategy,
        side=side,  # type: ignore[arg-type]
        qty=sized.qty,
        reason="entry",
        ref_price=price,
    )
    case, checks = _entry_case(state, desk, sized, context, symbol=symbol, day=day, equity=equity, side=side)
    block = first_block(case)
    if block is not None:
        return [intent, *_refused(state, desk.risk, block, ts, intent_id, symbol, checks, day)]
    if desk.trail_atr > 0:
        checks["trail_distance"] = desk.trail_atr * context.atr
    accepted = RiskAccepted(ts=ts, intent_id=intent_id, symbol=symbol, qty=sized.qty, checks=checks)
    return [
        intent,
        accepted,
        _entry_order(state, desk, intent_id, symbol, side, sized.qty, price, strategy, ts),
    ]


def _entry_order(
    state: PortfolioState,
    desk: Desk,
    intent_id: str,
    symbol: str,
    side: str,
    qty: float,
    close: float,
    strategy: str,
    ts: int,
) -> OrderSubmitted:
    """The entry order: market (the default), or a limit, stop or stop-limit priced from the signal
    ``close`` (events/orders.py, :func:`entry_prices`)."""
    kind = desk.entry_order
    if kind == "market":
        return OrderSubmitted(
            ts=ts,
            client_order_id=state.next_order_id(),
            intent_id=intent_id,
            symbol=symbol,
            side=side,  # type: ignore[arg-type]
            qty=qty,
            reason="entry",
            strategy=strategy,
        )
    risk = desk.risk
    limit, stop = entry_prices(
        kind, side, close, risk.option("entry_offset_pct", 0.5), risk.option("stop_limit_band_pct", 0.5)
    )
    return OrderSubmitted(
        ts=ts,
        client_order_id=state.next_order_id(),
        intent_id=intent_id,
        symbol=symbol,
        side=side,  # type: ignore[arg-type]
        qty=qty,
        order_type=kind,
        limit_price=None if math.isnan(limit) else limit,
        stop_price=None if math.isnan(stop) else stop,
        reason="entry",
        strategy=strategy,
    )


OPPOSITE_OPEN = {
    "buy": "cannot open a long buy while a short sell order is open",
    "sell": "cannot open a short sell while a long buy order is open",
}
"""Alpaca's own words for an entry against a working entry on the other side (checked before sending,
in backtests and live alike)."""


def _opposite_working(
    state: PortfolioState, working: Order, *, ts: int, symbol: str, strategy: str, side: str, price: float
) -> list[Event]:
    """An entry while another entry of ``symbol`` is working: nothing on the same side (it waits);
    on the other side a refusal, as Alpaca refuses it."""
    if working.reason != "entry" or working.side == side:
        return []
    intent_id = state.next_intent_id()
    return [
        OrderIntent(
            ts=ts,
            intent_id=intent_id,
            symbol=symbol,
            strategy=strategy,
            side=side,  # type: ignore[arg-type]
            qty=working.qty,
            reason="entry",
            ref_price=price,
        ),
        RiskRejected(
            ts=ts,
            intent_id=intent_id,
            symbol=symbol,
            rule="opposite_order_open",
            message=OPPOSITE_OPEN[side],
            checks={"working_qty": working.qty},
        ),
    ]


def _short_buying_power(state: PortfolioState, risk: RiskConfig, equity: float) -> float:
    """What a new short may sell, in dollars: Reg-T buying power, equity over the initial margin
    less the market value already held (long and short)."""
    return max(equity / risk.initial_margin - state.gross_exposure, 0.0)


def _entry_case(
    state: PortfolioState,
    desk: Desk,
    sized: SizedEntry,
    context: MarketContext,
    *,
    symbol: str,
    day: int,
    equity: float,
    side: str,
) -> tuple[EntryCase, dict[str, float]]:
    """The case the entry rules judge, and the figures recorded on the decision."""
    daily_pnl_pct = (equity / state.day_start_equity - 1.0) * 100.0 if state.day_start_equity > 0 else 0.0
    checks = {**sized.checks, "daily_pnl_pct": daily_pnl_pct, "day": float(day)}
    pending_entries = (
        sum(1 for o in state.market_orders.values() if o.reason == "entry") if state.market_orders else 0
    )
    short = side == "sell"
    if short:
        checks.update(
            equity=equity,
            buying_power=sized.checks["cash"],  # what sizing capped the short by (its "cash")
            gross_exposure=state.gross_exposure,
            initial_margin_pct=desk.risk.initial_margin * 100.0,
            margin_required=desk.risk.initial_margin * (state.gross_exposure + sized.qty * sized.price),
            borrow_fee_pct=desk.risk.borrow_rate * 100.0,
        )
    case = EntryCase(
        risk=desk.risk,
        symbol=symbol,
        sized=sized,
        context=context,
        allowed_regimes=desk.allowed_regimes,
        open_positions=len(state.positions),
        pending_entries=pending_entries,
        daily_pnl_pct=daily_pnl_pct,
        halted_today=state.halted_day == str(day),
        short=short,
        equity=equity,
        gross_exposure=state.gross_exposure,
    )
    return case, checks


def _refused(
    state: PortfolioState,
    risk: RiskConfig,
    block: tuple[str, str],
    ts: int,
    intent_id: str,
    symbol: str,
    checks: dict[str, float],
    day: int,
) -> list[Event]:
    """The rejection of an entry (and, the first time in a session, the daily-loss alert)."""
    rule, message = block
    rejected = RiskRejected(
        ts=ts, intent_id=intent_id, symbol=symbol, rule=rule, message=message, checks=checks
    )
    day_key = str(day)
    if rule == "daily_loss" and ("daily_loss", day_key) not in state.alerted:
        return [rejected, _daily_loss_alert(ts, symbol, day_key, checks["daily_pnl_pct"], risk)]
    return [rejected]


# What a strategy's side does in each direction: (the side of the entry it makes, or "", and the held
# side it exits, or ""). long: BUY enters, SELL exits. short: SELL enters a short, BUY covers. both
# (stop-and-reverse): BUY makes the position long and SELL short, closing the other side first.
# FLAT (2, a target strategy's 0) exits whatever is held in every direction.
SIDE_RULES: dict[str, dict[int, tuple[str, str]]] = {
    "long": {1: ("buy", ""), -1: ("", "long"), 2: ("", "any")},
    "short": {1: ("", "short"), -1: ("sell", ""), 2: ("", "any")},
    "both": {1: ("buy", "short"), -1: ("sell", "long"), 2: ("", "any")},
}


def signal_plan(state: PortfolioState, direction: str, symbol: str, side: int) -> tuple[bool, str]:
    """What a signal ``side`` (BUY 1 / SELL -1) does to ``symbol`` in ``direction``: (exit what is held,
    the entry side to place: "buy", "sell" or ""). With an exit, the entry is the reversal placed once
    the exit has filled; without one, it is placed now (nothing is held)."""
    entry, exits = SIDE_RULES[direction][side]
    position = state.positions.get(symbol)
    if position is None:
        return False, entry
    held = "long" if position.qty > 0 else "short"
    if exits in (held, "any"):
        return True, entry
    return False, ""


def signal_side(state: PortfolioState, symbol: str, side: int) -> str:
    """The order side a signal names on its Signal event: buy for BUY, sell for SELL; FLAT names the
    exit it makes (buy to cover a short, sell otherwise)."""
    if side == 1:
        return "buy"
    position = state.positions.get(symbol)
    return "buy" if side == 2 and position is not None and position.qty < 0 else "sell"


def _daily_loss_alert(ts: int, symbol: str, day_key: str, daily_pnl_pct: float, risk: RiskConfig) -> Alert:
    """The once-a-session alert that the daily-loss limit has locked new entries."""
    return Alert(
        ts=ts,
        rule="daily_loss",
        severity="critical",
        message=f"daily loss {daily_pnl_pct:.2f} % hit the {risk.max_daily_loss_pct:g} % limit; "
        "no new entries until the next session",
        value=daily_pnl_pct,
        threshold=-risk.max_daily_loss_pct,
        symbol=symbol,
        day=day_key,
    )


def correlation_context(
    context: MarketContext, state: PortfolioState, windows: ReturnWindows, symbol: str
) -> MarketContext:
    """``context`` with the correlations of ``symbol`` to every open position and working entry."""
    held = set(state.positions) | {s for s, o in state.market_orders.items() if o.reason == "entry"}
    pairs = tuple((other, windows.correlation(symbol, other)) for other in sorted(held) if other != symbol)
    return context._replace(correlations=pairs)


def decide_exit(state: PortfolioState, *, ts: int, symbol: str, reason: str, price: float) -> list[Event]:
    """Close the position in ``symbol`` with a market order (cancelling its protective order first).

    Exits are never blocked by the risk gate. Nothing happens without a position or while an exit is
    already working.
    """
    position = state.positions.get(symbol)
    if position is None or symbol in state.market_orders:
        return []
    out: list[Event] = []
    if position.protective_id:
        out.append(
            OrderCancelled(ts=ts, client_order_id=position.protective_id, symbol=symbol, reason=reason)
        )
    intent_id = state.next_intent_id()
    side = "sell" if position.qty > 0 else "buy"  # a short is covered by a buy
    qty = abs(position.qty)
    out.append(
        OrderIntent(
            ts=ts,
            intent_id=intent_id,
            symbol=symbol,
            strategy=position.strategy,
            side=side,
            qty=qty,
            reason=reason,  # type: ignore[arg-type]
            ref_price=price,
        )
    )
    out.append(
        OrderSubmitted(
            ts=ts,
            client_order_id=state.next_order_id(),
            intent_id=intent_id,
            symbol=symbol,
            side=side,
            qty=qty,
            reason=reason,
            strategy=position.strategy,
        )
    )
    return out


def decide_fill(state: PortfolioState, desk: Desk, fill: Fill) -> list[Event]:
    """A fill and what follows from it, decided on the state *before* the fill is applied.

    An entry fill opens a position (a buy a long, a sell entry a short: negative quantity) and places
    its protective OCO order (stop and target, on the far side for a short); an exit fill closes the
    position with its gross and net P&L in whole cents. An exit fill smaller than the position (a live
    exit the broker ended part filled) closes that part only: its P&L is against the part's share of the
    entry cost and commission (:func:`closing_part`), and the rest stays open.
    """
    if opens_position(state, fill):
        return _opened(state, desk, fill)
    position = state.positions[fill.symbol]
    qty = fill.qty if position.qty > 0 else -fill.qty  # signed as the position
    part = closing_part(position, qty)
    if part is None:  # the whole position (every simulated fill): its full entry cost and commission
        cost, entry_commission, entry_slippage = (
            position.entry_cost_cents,
            position.entry_commission_cents,
            position.entry_slippage,
        )
    else:
        cost, entry_commission, entry_slippage = part
    gross = notional_cents(qty, fill.price) - cost
    commission = entry_commission + cents(fill.commission)
    return [
        fill,
        PositionClosed(
            ts=fill.ts,
            symbol=fill.symbol,
            strategy=position.strategy,
            qty=qty,
            entry_ts=position.entry_ts,
            entry_price=position.entry_price,
            exit_price=fill.price,
            exit_reason=fill.reason,  # type: ignore[arg-type]
            gross_pnl=gross / 100.0,
            commission=commission / 100.0,
            net_pnl=(gross - commission) / 100.0,
            slippage=entry_slippage + fill.slippage,
        ),
    ]


def _opened(state: PortfolioState, desk: Desk, fill: Fill) -> list[Event]:
    """An entry fill: the position it opens and its protective order."""
    order = state.market_orders.get(fill.symbol)
    strategy = order.strategy if order is not None and order.client_order_id == fill.client_order_id else ""
    short = fill.side == "sell"
    stop, target = protective_prices(fill.price, desk.risk, short=short)
    distance = state.stop_distance.get(fill.symbol)
    if distance is not None:  # ATR sizing: the stop sits the accepted distance beyond the fill
        stop = fill.price + distance if short else max(fill.price - distance, 0.0)
    if desk.trailing:  # a trailing stop starts its distance from the fill
        trail = trail_start(
            "short" if short else "long",
            fill.price,
            pct=desk.risk.option("trail_pct", 0.0),
            distance=desk.risk.option("trail_amount", 0.0) or state.trail_distance.get(fill.symbol, 0.0),
        )
        stop = trail.level if trail.level > 0 else 0.0
    out: list[Event] = [
        fill,
        PositionOpened(
            ts=fill.ts,
            symbol=fill.symbol,
            strategy=strategy,
            qty=-fill.qty if short else fill.qty,
            entry_price=fill.price,
            stop_price=stop,
            take_profit_price=target,
            entry_commission=fill.commission,
        ),
    ]
    if stop > 0 or target > 0:
        out.append(
            OrderSubmitted(
                ts=fill.ts,
                client_order_id=state.next_order_id(),
                intent_id=order.intent_id if order is not None else "",
                symbol=fill.symbol,
                side="buy" if short else "sell",
                qty=fill.qty,
                order_type="oco",
                limit_price=target or None,
                stop_price=stop or None,
                reason="protective",
                strategy=strategy,
            )
        )
    return out


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


# --------------------------------------------------------------------------- the simulated broker


def simulate_open_fill(
    state: PortfolioState, desk: Desk, *, ts: int, symbol: str, open: float
) -> list[Event]:
    """The working market order in ``symbol`` executes at this bar's open, moved by slippage.

    A buy the cash no longer covers (the price gapped up since it was sized) is rejected, as a broker
    would for insufficient buying power.
    """
    order = state.market_orders[symbol]
    cost = desk.cost
    price = cost.market_price(order.side, open)
    commission = cost.fill_commission(symbol, order.qty, price)
    if order.side == "buy" and order.reason == "entry":
        needed = notional_cents(order.qty, price) + cents(commission)
        if needed > state.cash_cents:
            return [
                OrderRejected(
                    ts=ts,
                    client_order_id=order.client_order_id,
                    symbol=symbol,
                    reason=f"insufficient buying power: needs {needed / 100:.2f}, cash {state.cash:.2f}",
                )
            ]
    fill = Fill(
        ts=ts,
        client_order_id=order.client_order_id,
        exec_id=f"{order.client_order_id}-f1",
        symbol=symbol,
        side=order.side,  # type: ignore[arg-type]
        qty=order.qty,
        price=price,
        commission=commission,
        slippage=abs(price - open) * order.qty,
        reason=order.reason,
    )
    return decide_fill(state, desk, fill)


def simulate_protective_fill(
    state: PortfolioState, desk: Desk, *, ts: int, symbol: str, open: float, high: float, low: float
) -> list[Event]:
    """The resting stop/target of ``symbol`` checked against one bar (gap fills at the open; when the
    bar touches both, the stop is assumed first). The stop leg is a market order and pays slippage; the
    target leg is a limit and fills at its price (or the better open after a gap). A short's
    protective is a buy: its stop is above, its target below."""
    order = state.protective[symbol]
    target = 0.0 if order.target == NO_TARGET else order.target
    exit_rule = short_protective_exit if order.side == "buy" else protective_exit
    hit = exit_rule(order.stop, target, open, high, low)
    if hit is None:
        return []
    reason, trigger = hit
    price = desk.cost.market_price(order.side, trigger) if reason == "stop_loss" else trigger
    fill = Fill(
        ts=ts,
        client_order_id=order.client_order_id,
        exec_id=f"{order.client_order_id}-f1",
        symbol=symbol,
        side=order.side,  # type: ignore[arg-type]
        qty=order.qty,
        price=price,
        commission=desk.cost.fill_commission(symbol, order.qty, price),
        slippage=abs(trigger - price) * order.qty,
        reason=reason,
    )
    return decide_fill(state, desk, fill)
