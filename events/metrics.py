"""Performance metrics of a run, from its closed trades and its equity marks.

Money is summed in integer cents and reported to the cent; ratios and percentages are rounded to 4
decimals. A ratio that is undefined (no losing trade for the profit factor, no volatility for Sharpe)
is ``None`` rather than infinity or zero, so JSON consumers can tell "undefined" from "bad".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import msgspec

from tape.events.costs import cents


class Trade(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One round trip, as a report shows it (times in ns since the epoch)."""

    symbol: str
    strategy: str
    entry_ts: int
    entry_price: float
    exit_ts: int
    exit_price: float
    qty: float
    gross_pnl: float
    commission: float
    pnl: float  # net of commission (and of a short's borrow fees)
    exit_reason: str
    slippage: float = 0.0
    side: str = "long"  # or "short" (qty negative)
    borrow_fee: float = 0.0  # a short's borrow fees paid while it was open


class Mark(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Equity at a period's close, with the deepest drawdown reached inside the period."""

    ts: int
    equity: float
    drawdown: float
    drawdown_pct: float
    bars: int
    bars_in_market: int


def _r(value: float | None, digits: int = 4) -> float | None:
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return round(value, digits)


def _money(total_cents: int) -> float:
    return round(total_cents / 100.0, 2)


def streaks(wins: Sequence[bool]) -> tuple[int, int]:
    """Longest runs of consecutive wins and of consecutive losses."""
    best_win = best_loss = run = 0
    last: bool | None = None
    for won in wins:
        run = run + 1 if won == last else 1
        last = won
        if won:
            best_win = max(best_win, run)
        else:
            best_loss = max(best_loss, run)
    return best_win, best_loss


def period_returns(start_equity: float, marks: Sequence[Mark]) -> list[float]:
    """Simple returns from one mark to the next, the first measured from the starting equity."""
    out, previous = [], start_equity
    for mark in marks:
        out.append(mark.equity / previous - 1.0 if previous > 0 else 0.0)
        previous = mark.equity
    return out


def sharpe_ratio(returns: Sequence[float], periods_per_year: float) -> float | None:
    """Mean over sample standard deviation of period returns, annualised; None without volatility."""
    n = len(returns)
    if n < 2:
        return None
    mean = math.fsum(returns) / n
    var = math.fsum((r - mean) ** 2 for r in returns) / (n - 1)
    if var <= 0:
        return None
    return mean / math.sqrt(var) * math.sqrt(periods_per_year)


def sortino_ratio(returns: Sequence[float], periods_per_year: float) -> float | None:
    """Mean return over downside deviation (root mean square of the negative returns, target 0),
    annualised; None when no period lost money."""
    n = len(returns)
    if n < 2:
        return None
    downside = math.fsum(min(r, 0.0) ** 2 for r in returns) / n
    if downside <= 0:
        return None
    return math.fsum(returns) / n / math.sqrt(downside) * math.sqrt(periods_per_year)


def buy_and_hold_pct(legs: Sequence[tuple[float, float]]) -> float | None:
    """Equal-weighted buy-and-hold return of (first close, last close) legs, in percent."""
    if not legs:
        return None
    return math.fsum((last / first - 1.0) * 100.0 for first, last in legs) / len(legs)


def compute_metrics(
    *,
    start_equity: float,
    trades: Sequence[Trade],
    marks: Sequence[Mark],
    benchmark: Sequence[tuple[float, float]],
    periods_per_year: float,
) -> dict[str, Any]:
    """Every metric a report shows, with snake_case keys (see module docstring for rounding)."""
    net = [cents(t.pnl) for t in trades]
    gross = [cents(t.gross_pnl) for t in trades]
    wins = [c for c in net if c > 0]
    losses = [c for c in net if c <= 0]
    total = sum(net)
    final_equity = marks[-1].equity if marks else start_equity
    max_dd = max((m.drawdown for m in marks), default=0.0)
    max_dd_pct = max((m.drawdown_pct for m in marks), default=0.0)
    bars = sum(m.bars for m in marks)
    in_market = sum(m.bars_in_market for m in marks)
    returns = period_returns(start_equity, marks)
    longest_win, longest_loss = streaks([c > 0 for c in net])
    return {
        "total_trades": len(trades),
        "total_pnl": _money(total),
        "gross_pnl": _money(sum(gross)),
        "total_commission": _money(sum(cents(t.commission) for t in trades)),
        "total_slippage": round(math.fsum(t.slippage for t in trades), 2),
        "start_equity": round(start_equity, 2),
        "final_equity": round(final_equity, 2),
        "return_pct": _r((final_equity / start_equity - 1.0) * 100.0),
        "win_rate": _r(len(wins) / len(net) * 100.0) if net else 0.0,
        "num_wins": len(wins),
        "num_losses": len(losses),
        "avg_win": round(sum(wins) / len(wins) / 100.0, 2) if wins else 0.0,
        "avg_loss": round(sum(losses) / len(losses) / 100.0, 2) if losses else 0.0,
        "largest_win": _money(max(wins)) if wins else 0.0,
        "largest_loss": _money(min(losses)) if losses else 0.0,
        "max_drawdown": round(max_dd, 2),
        "max_drawdown_pct": _r(max_dd_pct),
        "sharpe": _r(sharpe_ratio(returns, periods_per_year)),
        "sortino": _r(sortino_ratio(returns, periods_per_year)),
        "profit_factor": _r(sum(wins) / -sum(losses)) if losses and sum(losses) < 0 else None,
        "max_consecutive_wins": longest_win,
        "max_consecutive_losses": longest_loss,
        "recovery_factor": _r(total / 100.0 / max_dd) if max_dd > 0 else None,
        "exposure_pct": _r(in_market / bars * 100.0) if bars else 0.0,
        "buy_hold_return_pct": _r(buy_and_hold_pct(benchmark)),
        "bars": bars,
        "total_borrow_fees": _money(sum(cents(t.borrow_fee) for t in trades)),
        **side_metrics([t for t in trades if t.side == "long"], "long"),
        **side_metrics([t for t in trades if t.side == "short"], "short"),
    }


def side_metrics(trades: Sequence[Trade], side: str) -> dict[str, Any]:
    """Trades, win rate and P&L of one side's trades, keyed ``<side>_trades`` and so on (flat, as
    every metric is: sweeps record metrics as numbers)."""
    net = [cents(t.pnl) for t in trades]
    wins = sum(1 for c in net if c > 0)
    return {
        f"{side}_trades": len(net),
        f"{side}_win_rate": _r(wins / len(net) * 100.0) if net else 0.0,
        f"{side}_pnl": _money(sum(net)),
    }
