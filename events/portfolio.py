"""The portfolio's deciders: the decide half of the decide/evolve core, shared by the backtest loop,
the live PortfolioActor and replay.

The ``decide_*`` functions read a :class:`~tape.events.portfolio_state.PortfolioState` and return new
events; they never change it. Drivers alternate: ``events = decide_*(state, ...)``, then ``evolve(state,
e)`` for each. The simulated broker lives here too (:func:`simulate_open_fill`,
:func:`simulate_protective_fill`): a pure function of the state and a bar, which is what lets a backtest
and a sim-broker live run agree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from tape.events.correlation import ReturnWindows
from tape.events.costs import CostModel, cents, notional_cents
from tape.events.entry_rules import EntryCase, SizedEntry, first_block, size_entry
from tape.events.orders import entry_prices, trail_start
from tape.events.portfolio_state import (
    NO_CONTEXT,
    NO_TARGET,
    Order,
    PortfolioState,
    closing_part,
    opens_position,
)
from tape.events.risk import (
    MarketContext,
    RiskConfig,
    protective_exit,
    protective_prices,
    short_protective_exit,
)
from tape.events.schema import (
    Alert,
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
)

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
    marks: Mapping[str, float] | None = None,
    context: MarketContext = NO_CONTEXT,
    size_factor: float = 1.0,
    side: str = "buy",
) -> list[Event]:
    """An entry signal at ``price`` (the bar's close), ``side`` buy (long) or sell (short): size it,
    run the risk gate (events/entry_rules.py), place the entry order. Nothing while the symbol has a
    position or a working order on the same side. ``marks``: each held symbol's last price, the market
    value a short's margin is reckoned on (needed only with positions open); ``day``: the session the
    daily-loss limit counts in; ``context``: ATR and average volume for ATR sizing and liquidity."""
    if symbol in state.positions:
        return []
    working = state.market_orders.get(symbol)
    if working is not None:
        return _opposite_working(
            state, working, ts=ts, symbol=symbol, strategy=strategy, side=side, price=price
        )
    exposure = state.gross_exposure(marks or {}) if side == "sell" else 0.0
    buying_power = _short_buying_power(desk.risk, equity, exposure) if side == "sell" else state.cash
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
    case, checks = _entry_case(
        state, desk, sized, context, symbol=symbol, day=day, equity=equity, exposure=exposure, side=side
    )
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


def _short_buying_power(risk: RiskConfig, equity: float, exposure: float) -> float:
    """What a new short may sell, in dollars: Reg-T buying power, equity over the initial margin
    less the market value already held (long and short)."""
    return max(equity / risk.initial_margin - exposure, 0.0)


def _entry_case(
    state: PortfolioState,
    desk: Desk,
    sized: SizedEntry,
    context: MarketContext,
    *,
    symbol: str,
    day: int,
    equity: float,
    exposure: float,
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
            gross_exposure=exposure,
            initial_margin_pct=desk.risk.initial_margin * 100.0,
            margin_required=desk.risk.initial_margin * (exposure + sized.qty * sized.price),
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
        gross_exposure=exposure,
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


# --------------------------------------------------------------------------- the simulated broker


def simulate_open_fill(
    state: PortfolioState, desk: Desk, *, ts: int, symbol: str, open: float
) -> list[Event]:
    """The working market order in ``symbol`` executes at this bar's open, moved by slippage.

    A buy the cash no longer covers (the price gapped up since it was sized) is rejected, as a broker
    would for insufficient buying power.
    """
    order = state.market_orders[symbol]
    return execute_order(
        state, desk, ts=ts, symbol=symbol, price=desk.cost.market_price(order.side, open), quoted=open
    )


def execute_order(
    state: PortfolioState, desk: Desk, *, ts: int, symbol: str, price: float, quoted: float
) -> list[Event]:
    """The working order in ``symbol`` fills at ``price`` (``quoted`` before slippage) and what follows;
    an entry buy the cash no longer covers is rejected instead, as a broker would for insufficient
    buying power."""
    order = state.market_orders[symbol]
    commission = desk.cost.fill_commission(symbol, order.qty, price)
    if order.side == "buy" and order.reason == "entry":
        needed = notional_cents(order.qty, price) + cents(commission)
        if needed > state.cash_cents:
            reason = f"insufficient buying power: needs {needed / 100:.2f}, cash {state.cash:.2f}"
            return [OrderRejected(ts=ts, client_order_id=order.client_order_id, symbol=symbol, reason=reason)]
    fill = Fill(
        ts=ts,
        client_order_id=order.client_order_id,
        exec_id=f"{order.client_order_id}-f1",
        symbol=symbol,
        side=order.side,  # type: ignore[arg-type]
        qty=order.qty,
        price=price,
        commission=commission,
        slippage=abs(price - quoted) * order.qty,
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
