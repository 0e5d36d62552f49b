"""What holding shorts costs and risks, decided at a session's end: each day's borrow fee and the
maintenance-margin call (Alpaca's rules, see events/risk.py). Pure, shared by the backtest loop and the
bar-by-bar session."""

from __future__ import annotations

from tape.events.portfolio import Desk
from tape.events.portfolio_state import PortfolioState
from tape.events.risk import borrow_fee_cents
from tape.events.schema import Alert, BorrowFeeCharged, Event

NS_PER_DAY = 86_400 * 10**9


def decide_margin_call(state: PortfolioState, desk: Desk, ts: int, prices: dict[str, float]) -> list[Event]:
    """At a session's end with shorts open: a critical alert (once a day) when equity is below the
    maintenance margin of the open positions' market value, long and short (Reg-T maintenance, as
    Alpaca's margin call). Nothing is liquidated; new shorts stay bound by the initial margin."""
    exposure = state.gross_exposure(prices)
    required = desk.risk.maintenance_margin * exposure
    equity = state.equity(prices)
    day = str(ts // NS_PER_DAY)
    if equity >= required or ("margin_call", day) in state.alerted:
        return []
    return [
        Alert(
            ts=ts,
            rule="margin_call",
            severity="critical",
            message=f"equity {equity:,.2f} is below the maintenance margin {required:,.2f} "
            f"({desk.risk.maintenance_margin * 100:g} % of {exposure:,.2f} held)",
            value=equity,
            threshold=required,
            day=day,
        )
    ]


def decide_borrow_fees(state: PortfolioState, desk: Desk, ts: int, prices: dict[str, float]) -> list[Event]:
    """One day's borrow fee of every open short, on its market value at ``prices`` (the session's
    closes): (|qty| x price x annual rate) / 360, in whole cents. Nothing for a fee that rounds to 0."""
    out: list[Event] = []
    rate = desk.risk.borrow_rate
    for symbol, position in state.positions.items():
        if position.qty < 0:
            price = prices[symbol]
            fee = borrow_fee_cents(position.qty, price, rate)
            if fee:
                out.append(
                    BorrowFeeCharged(
                        ts=ts,
                        symbol=symbol,
                        qty=-position.qty,
                        price=price,
                        rate_pct=rate * 100,
                        fee=fee / 100,
                    )
                )
    return out
