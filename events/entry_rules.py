"""The risk gate for a new entry: sizing first, then an ordered list of small named rules.

:func:`size_entry` turns a signal into a quantity and the figures behind it (``checks``, recorded on the
RiskAccepted / RiskRejected event). :data:`ENTRY_RULES` are then asked in order; the first that returns a
``(rule, message)`` blocks the entry and names itself on the rejection. Adding a rule is adding a function
to the tuple: ``decide_entry`` (events/portfolio.py) only walks it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from tape.events.costs import CostModel, is_pair
from tape.events.risk import MIN_SHORT_EQUITY, MarketContext, RiskConfig, floor_to, size_position

Block = tuple[str, str] | None


class SizedEntry(NamedTuple):
    """A signal sized: the quantity to buy and what it was derived from."""

    qty: float
    sized_qty: float  # before the liquidity cap, the size factor and the correlation halving
    affordable_qty: float
    step: float  # 1 share, or a pair's coin step
    stop_distance: float | None  # ATR sizing's distance (None with percentage stops)
    usable_stop: float | None  # the distance when it is defined and positive
    too_correlated: list[tuple[str, float]]
    checks: dict[str, Any]
    price: float = 0.0  # the signal's close it was sized on


def size_entry(
    risk: RiskConfig,
    cost: CostModel,
    *,
    symbol: str,
    price: float,
    equity: float,
    cash: float,
    context: MarketContext,
    size_factor: float,
    side: str = "buy",
) -> SizedEntry:
    """Size an entry at ``price``: the risk budget, capped by cash (for a short, ``cash`` is its buying
    power), position size, liquidity and correlation."""
    stop_distance = context.atr * risk.atr_stop_multiple if risk.sizing == "atr" else None
    usable_stop = stop_distance if stop_distance is not None and stop_distance > 0 else None
    cost_per_share = cost.market_price(side, price)
    fee_bps = cost.taker_bps(symbol)
    if fee_bps:  # a percentage fee makes every unit dearer
        cost_per_share *= 1.0 + fee_bps * 1e-4
    step = risk.increment(symbol)
    sizing = size_position(equity, cash, price, risk, cost_per_share, cost.commission, usable_stop, step)
    checks = dict(sizing.checks)
    if step != 1.0:
        checks["qty_increment"] = step
    qty = sizing.qty
    if size_factor < 1.0:  # e.g. an ensemble whose members only partly agree: a smaller bet
        qty = floor_to(qty * max(size_factor, 0.0), step)
        checks["size_factor"] = size_factor
    if stop_distance is not None:
        checks.update(atr=context.atr, stop_distance=stop_distance)
    if risk.max_volume_pct > 0 and context.avg_volume == context.avg_volume:
        cap = floor_to(context.avg_volume * risk.max_volume_pct / 100.0, step)
        checks.update(avg_volume=context.avg_volume, liquidity_cap_qty=float(cap))
        qty = float(min(qty, cap))
    if risk.min_avg_volume > 0:
        checks.update(avg_volume=context.avg_volume, min_avg_volume=risk.min_avg_volume)
    too_correlated = [(s, c) for s, c in context.correlations if c == c and c > risk.max_correlation]
    if risk.max_correlation > 0:
        checks.update({f"corr_{s}": c for s, c in context.correlations if c == c})
        if too_correlated and risk.correlation_action == "shrink":
            qty = floor_to(qty / 2, step)
            checks["correlation_shrunk_qty"] = qty
    return SizedEntry(
        qty=qty,
        sized_qty=sizing.qty,
        affordable_qty=sizing.checks["affordable_qty"],
        step=step,
        stop_distance=stop_distance,
        usable_stop=usable_stop,
        too_correlated=too_correlated,
        checks=checks,
        price=price,
    )


class EntryCase(NamedTuple):
    """Everything a rule may read about the entry being decided."""

    risk: RiskConfig
    symbol: str
    sized: SizedEntry
    context: MarketContext
    allowed_regimes: tuple[str, ...]
    open_positions: int
    pending_entries: int
    daily_pnl_pct: float
    halted_today: bool
    short: bool = False
    equity: float = 0.0
    gross_exposure: float = 0.0  # market value of the open positions, long and short


Rule = Callable[[EntryCase], Block]


def session_halted(case: EntryCase) -> Block:
    """The daily-loss limit was hit earlier this session: entries stay locked until the next one."""
    if case.halted_today:
        return "daily_loss", "new entries locked for the rest of the session"
    return None


def position_slots(case: EntryCase) -> Block:
    """Open positions plus working entries may not exceed ``max_positions``."""
    taken = case.open_positions + case.pending_entries
    if taken >= case.risk.max_positions:
        return "max_positions", f"{taken} of {case.risk.max_positions} position slots in use"
    return None


def daily_loss(case: EntryCase) -> Block:
    """No new entry once the day's loss reaches ``max_daily_loss_pct``."""
    limit = case.risk.max_daily_loss_pct
    if limit > 0 and case.daily_pnl_pct <= -limit:
        return "daily_loss", f"down {-case.daily_pnl_pct:.2f} % today, limit {limit:g} %"
    return None


def liquidity(case: EntryCase) -> Block:
    """The symbol's average volume must reach ``min_avg_volume``."""
    risk, avg = case.risk, case.context.avg_volume
    if risk.min_avg_volume > 0 and not avg >= risk.min_avg_volume:
        return (
            "liquidity",
            f"average volume {avg:,.0f} over {risk.volume_window} bars is below {risk.min_avg_volume:,.0f}",
        )
    return None


def correlation(case: EntryCase) -> Block:
    """With ``correlation_action=reject``, no entry correlated above the limit with an open position."""
    risk, too_correlated = case.risk, case.sized.too_correlated
    if too_correlated and risk.correlation_action == "reject":
        other, value = max(too_correlated, key=lambda sc: sc[1])
        return (
            "correlation",
            f"{case.symbol} returns correlate {value:.2f} with open {other} "
            f"(limit {risk.max_correlation:g} over {risk.correlation_window} bars)",
        )
    return None


def regime(case: EntryCase) -> Block:
    """Entries only in the market regimes the config allows."""
    allowed = case.allowed_regimes
    if allowed and case.context.regime not in allowed:
        now = case.context.regime or "not known yet (warm-up)"
        return "regime", f"{case.symbol} is {now}; entries are allowed when {' or '.join(allowed)}"
    return None


def atr_defined(case: EntryCase) -> Block:
    """ATR sizing needs a defined, positive ATR to place the stop."""
    if case.sized.stop_distance is not None and case.sized.usable_stop is None:
        return "atr_warmup", f"ATR({case.risk.atr_period}) is not defined yet: no stop distance to size by"
    return None


def nonzero_size(case: EntryCase) -> Block:
    """The sized quantity must be at least one unit; the message names what cut it to nothing."""
    sized = case.sized
    if sized.qty > 0:
        return None
    one, none = "one share", "no share"
    if sized.step != 1.0:
        one = f"{sized.step:g} {case.symbol.split('/')[0]}"
        none = f"less than {one}"
    if sized.affordable_qty < sized.step:
        return "cash", f"not enough cash for {one}"
    if "correlation_shrunk_qty" in sized.checks:
        return "correlation", f"halving the position for correlation leaves {none}"
    if sized.qty < sized.sized_qty:
        return "liquidity", f"{case.risk.max_volume_pct:g} % of the average volume is less than {one}"
    return "zero_size", f"risk budget buys {none}"


def crypto_short(case: EntryCase) -> Block:
    """Crypto pairs are never shorted (Alpaca has no crypto shorts)."""
    if case.short and is_pair(case.symbol):
        return "crypto_short", f"{case.symbol} is a crypto pair: crypto cannot be sold short"
    return None


def shortable(case: EntryCase) -> Block:
    """A short needs a symbol declared easy to borrow; unknown means refused."""
    if case.short and not case.risk.declared_shortable(case.symbol):
        return (
            "not_shortable",
            f"{case.symbol} is not known to be easy to borrow: declare it with --shortable {case.symbol} "
            f"(or --shortable '*' for every stock), or once with `tape data shortable {case.symbol}`",
        )
    return None


def short_equity(case: EntryCase) -> Block:
    """No new short with account equity under $2,000 (Alpaca's margin minimum)."""
    if case.short and case.equity < MIN_SHORT_EQUITY:
        return (
            "short_equity",
            f"equity {case.equity:,.2f} is under the {MIN_SHORT_EQUITY:,.0f} a margin account needs to short",
        )
    return None


def fractional_short(case: EntryCase) -> Block:
    """Shorts are whole shares only (Alpaca refuses fractional short sales)."""
    qty = case.sized.qty
    if case.short and qty > 0 and qty != int(qty):
        return "fractional_short", f"{qty:g} {case.symbol} is fractional: short sales must be whole shares"
    return None


def margin(case: EntryCase) -> Block:
    """A short is sized within Reg-T buying power (equity over the initial margin, less the market
    value already held); when that leaves not even one share, the short is refused for margin."""
    sized = case.sized
    if not case.short or sized.affordable_qty >= sized.step:
        return None
    buying_power = max(case.equity / case.risk.initial_margin - case.gross_exposure, 0.0)
    return (
        "margin",
        f"shorting one {case.symbol} at {sized.price:,.2f} exceeds buying power {buying_power:,.2f} "
        f"(equity {case.equity:,.2f} at {case.risk.initial_margin * 100:g} % initial margin, "
        f"{case.gross_exposure:,.2f} already held)",
    )


ENTRY_RULES: tuple[Rule, ...] = (
    session_halted,
    position_slots,
    daily_loss,
    liquidity,
    correlation,
    regime,
    atr_defined,
    nonzero_size,
)
"""The rules of a long entry in the order they are asked; the first block wins and is recorded."""

SHORT_ENTRY_RULES: tuple[Rule, ...] = (
    crypto_short,
    shortable,
    short_equity,
    *ENTRY_RULES[:-1],
    margin,
    nonzero_size,
    fractional_short,
)
"""A short's rules: Alpaca's short rules first, margin before the size, then the long's."""


def first_block(case: EntryCase, rules: tuple[Rule, ...] | None = None) -> Block:
    """The first rule that forbids the entry, as (rule, message), or None when it may go ahead
    (``rules``: by default a long's or a short's, after the case)."""
    if rules is None:
        rules = SHORT_ENTRY_RULES if case.short else ENTRY_RULES
    for rule in rules:
        block = rule(case)
        if block is not None:
            return block
    return None
