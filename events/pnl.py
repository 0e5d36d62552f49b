"""Real-time P&L per symbol and per strategy, folded from a run's events alone.

Realised P&L is the net (after commissions) P&L of closed round trips, as PositionClosed recorded it
(a position sold in parts: each part); unrealised P&L marks each open position (what a part left of
it) at the latest price the log knows for its symbol (a live bar, a signal's close or a fill) and is
net of the entry commission not yet booked. Sums are kept in integer cents, so per-symbol figures add
up to the run's totals exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tape.events.costs import cents
from tape.events.portfolio_state import Position, take_closing_part
from tape.events.schema import BarReceived, Event, Fill, PositionClosed, PositionOpened, Signal


def _held(opened: PositionOpened) -> Position:
    """The position an open starts, with the entry cost and commission (cents) a close books against."""
    position = Position(opened.symbol, opened.strategy, opened.qty, opened.ts, opened.entry_price)
    position.entry_commission_cents = cents(opened.entry_commission)
    return position


class _Line:
    """Running figures of one symbol (or strategy), in cents."""

    __slots__ = ("commission", "gross", "net", "open", "trades", "wins")

    def __init__(self) -> None:
        self.gross = self.commission = self.net = 0
        self.trades = self.wins = 0
        self.open: Position | None = None  # what is still held, reduced by closing parts


def _fold(events: Iterable[Event]) -> tuple[dict[str, _Line], dict[str, float], dict[str, str]]:
    lines: dict[str, _Line] = {}
    last: dict[str, float] = {}
    strategy_of: dict[str, str] = {}
    for event in events:
        cls = event.__class__
        e: Any = event
        if cls is BarReceived or cls is Fill:
            last[e.symbol] = e.close if cls is BarReceived else e.price
        elif cls is Signal:
            last[e.symbol] = e.price
            strategy_of.setdefault(e.symbol, e.strategy)
        elif cls is PositionOpened:
            lines.setdefault(e.symbol, _Line()).open = _held(e)
            if e.strategy:
                strategy_of[e.symbol] = e.strategy
        elif cls is PositionClosed:
            line = lines.setdefault(e.symbol, _Line())
            if line.open is not None and not take_closing_part(line.open, e.qty):
                line.open = None
            line.gross += cents(e.gross_pnl)
            line.commission += cents(e.commission)
            net = cents(e.net_pnl)
            line.net += net
            line.trades += 1
            line.wins += net > 0
            if e.strategy:
                strategy_of[e.symbol] = e.strategy
    return lines, last, strategy_of


def _row(line: _Line, price: float | None) -> dict[str, Any]:
    position = line.open
    unrealized = 0
    if position is not None and price is not None:
        unrealized = cents(position.qty * price) - position.entry_cost_cents - position.entry_commission_cents
    return {
        "qty": position.qty if position is not None else 0.0,
        "entry_price": position.entry_price if position is not None else None,
        "last_price": price,
        "trades": line.trades,
        "wins": line.wins,
        "realized_gross": line.gross / 100.0,
        "commission": line.commission / 100.0,
        "realized_pnl": line.net / 100.0,
        "unrealized_pnl": unrealized / 100.0,
        "total_pnl": (line.net + unrealized) / 100.0,
    }


def pnl_by_symbol(
    events: Iterable[Event], prices: Mapping[str, float] | None = None
) -> dict[str, dict[str, Any]]:
    """Per symbol: position, realised (net of commissions) and unrealised P&L, trades and wins.

    ``prices`` (symbol -> price) overrides the latest prices found in the events (a live quote).
    """
    lines, last, strategy_of = _fold(events)
    last.update(prices or {})
    out: dict[str, dict[str, Any]] = {}
    for symbol in sorted(lines):
        row = _row(lines[symbol], last.get(symbol))
        row["strategy"] = strategy_of.get(symbol, "")
        out[symbol] = row
    return out


def pnl_by_strategy(
    events: Iterable[Event], prices: Mapping[str, float] | None = None
) -> dict[str, dict[str, Any]]:
    """:func:`pnl_by_symbol` summed per strategy (money summed in cents)."""
    by_symbol = pnl_by_symbol(events, prices)
    money = ("realized_gross", "commission", "realized_pnl", "unrealized_pnl", "total_pnl")
    sums: dict[str, dict[str, int]] = {}
    for row in by_symbol.values():
        acc = sums.setdefault(row["strategy"], {k: 0 for k in (*money, "trades", "wins", "open_positions")})
        for key in money:
            acc[key] += cents(row[key])
        acc["trades"] += row["trades"]
        acc["wins"] += row["wins"]
        acc["open_positions"] += row["qty"] != 0
    return {
        name: {
            **{k: acc[k] / 100.0 for k in money},
            **{k: acc[k] for k in ("trades", "wins", "open_positions")},
        }
        for name, acc in sorted(sums.items())
    }
