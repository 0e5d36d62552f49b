"""The portfolio core closes a position in parts: a sell fill smaller than the position books that part
against its share of the entry cost, and the parts sum to one whole close to the cent."""

from __future__ import annotations

from tape.events.costs import CostModel, cents
from tape.events.pnl import pnl_by_symbol
from tape.events.portfolio import Desk, decide_fill
from tape.events.portfolio_state import PortfolioState, evolve
from tape.events.risk import RiskConfig
from tape.events.schema import Event, Fill, PositionClosed

DESK = Desk(RiskConfig(), CostModel())
QTY = 7.0
ENTRY = 100.333  # 7 shares cost 702.331 dollars: the parts' shares of it do not split into whole cents


def _opened(symbol: str = "AAPL", qty: float = QTY) -> tuple[PortfolioState, list[Event]]:
    state = PortfolioState("r", 10_000.0)
    entry = Fill(
        ts=1,
        client_order_id="r-o1",
        exec_id="e1",
        symbol=symbol,
        side="buy",
        qty=qty,
        price=ENTRY,
        commission=2.5,
    )
    events = decide_fill(state, DESK, entry)
    for event in events:
        evolve(state, event)
    return state, events


def _sell(state: PortfolioState, qty: float, price: float, n: int, commission: float = 0.5) -> list[Event]:
    fill = Fill(
        ts=1 + n,
        client_order_id=f"r-x{n}",
        exec_id=f"x{n}",
        symbol=next(iter(state.positions)),
        side="sell",
        qty=qty,
        price=price,
        commission=commission,
        reason="signal",
    )
    events = decide_fill(state, DESK, fill)
    for event in events:
        evolve(state, event)
    return events


def _closes(events: list[Event]) -> list[PositionClosed]:
    return [e for e in events if isinstance(e, PositionClosed)]


def test_two_partial_closes_book_what_one_whole_close_books_to_the_cent() -> None:
    whole_state, _ = _opened()
    (whole,) = _closes(_sell(whole_state, QTY, 101.12, 1, commission=1.0))
    state, _ = _opened()
    parts = _closes(_sell(state, 3.0, 101.12, 1) + _sell(state, 4.0, 101.12, 2))
    assert [p.qty for p in parts] == [3.0, 4.0]
    for field in ("gross_pnl", "commission", "net_pnl"):
        assert sum(cents(getattr(p, field)) for p in parts) == cents(getattr(whole, field)), field
    assert state.realized_cents == whole_state.realized_cents
    assert state.cash_cents == whole_state.cash_cents
    assert state.cash_cents - state.start_cash_cents == state.realized_cents  # cash and P&L agree


def test_a_partial_close_keeps_the_rest_open_until_the_last_part() -> None:
    state, _ = _opened()
    (first,) = _closes(_sell(state, 3.0, 101.12, 1))
    position = state.positions["AAPL"]
    assert (first.qty, position.qty) == (3.0, 4.0)
    assert position.entry_cost_cents == 70233 - round(70233 * 3 / 7)  # the rest keeps the rest of the cost
    assert position.entry_commission_cents == 250 - round(250 * 3 / 7)
    (last,) = _closes(_sell(state, 4.0, 101.12, 2))
    assert last.qty == 4.0 and "AAPL" not in state.positions


def test_a_pair_sell_within_the_fee_tolerance_closes_the_whole_position() -> None:
    state, _ = _opened("BTC/USD", qty=0.5)
    (closed,) = _closes(_sell(state, 0.5 - 5e-9, 101.12, 1))
    assert closed.qty == 0.5 - 5e-9 and not state.positions


def test_pnl_by_symbol_marks_what_a_part_left_open() -> None:
    state, events = _opened()
    events = events + _sell(state, 3.0, 101.12, 1)
    row = pnl_by_symbol(events, {"AAPL": 102.0})["AAPL"]
    position = state.positions["AAPL"]
    assert row["qty"] == 4.0 and row["trades"] == 1
    expected = cents(4.0 * 102.0) - position.entry_cost_cents - position.entry_commission_cents
    assert cents(row["unrealized_pnl"]) == expected
    assert cents(row["realized_pnl"]) == state.realized_cents
