"""Summaries of a run by calendar period (exchange day, ISO week, month), folded from its report.

Every money figure is summed in integer cents and only then shown in dollars, so the periods add up to
the run's totals to the cent:

- ``net_pnl`` (realised, net of commissions) sums the trades that *closed* in the period; the periods'
  sum is the run's ``total_pnl``;
- ``equity_pnl`` (mark-to-market) is the change of the last equity mark of the period against the last
  mark before it (the starting cash for the first); the periods' sum is the final equity minus the
  starting cash, which equals ``total_pnl`` once every position is closed (a completed run).

Days are exchange (America/New_York) dates, weeks ISO weeks (``2024-W07``, Monday to Sunday).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any, Literal
from zoneinfo import ZoneInfo

from tape.events.costs import cents
from tape.events.errors import ConfigError
from tape.events.report import RunReport

Period = Literal["daily", "weekly", "monthly"]
PERIODS: tuple[str, ...] = ("daily", "weekly", "monthly")
_NY = ZoneInfo("America/New_York")


def period_key(ts: int, period: str) -> str:
    """The calendar period a market time falls in: ``2024-03-05``, ``2024-W10`` or ``2024-03``."""
    day = dt.datetime.fromtimestamp(ts / 1e9, tz=dt.UTC).astimezone(_NY).date()
    if period == "daily":
        return day.isoformat()
    if period == "weekly":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "monthly":
        return f"{day.year}-{day.month:02d}"
    raise ConfigError(f"--period must be daily, weekly or monthly, got {period!r}")


def _pct(numerator_cents: int, denominator_cents: int) -> float | None:
    return round(numerator_cents / denominator_cents * 100.0, 4) if denominator_cents > 0 else None


def period_rows(report: RunReport, period: str) -> list[dict[str, Any]]:
    """One row per period with a trade or an equity mark, oldest first."""
    period_key(0, period)  # validates the name
    rows: dict[str, dict[str, Any]] = {}

    def row(key: str) -> dict[str, Any]:
        found = rows.get(key)
        if found is None:
            found = rows[key] = {
                "period": key,
                "trades": 0,
                "wins": 0,
                "gross_cents": 0,
                "commission_cents": 0,
                "net_cents": 0,
                "equity_end_cents": None,
            }
        return found

    for trade in report.trades:
        r = row(period_key(trade.exit_ts, period))
        net = cents(trade.pnl)
        r["trades"] += 1
        r["wins"] += net > 0
        r["gross_cents"] += cents(trade.gross_pnl)
        r["commission_cents"] += cents(trade.commission)
        r["net_cents"] += net
    for mark in report.marks:
        row(period_key(mark.ts, period))["equity_end_cents"] = cents(mark.equity)
    previous = cents(float(report.config.get("cash", 0.0)))
    out = []
    for key in sorted(rows):
        r = rows[key]
        end = r["equity_end_cents"] if r["equity_end_cents"] is not None else previous
        change = end - previous
        out.append(
            {
                "period": key,
                "trades": r["trades"],
                "wins": r["wins"],
                "win_rate": round(r["wins"] / r["trades"] * 100.0, 4) if r["trades"] else None,
                "gross_pnl": r["gross_cents"] / 100.0,
                "commission": r["commission_cents"] / 100.0,
                "net_pnl": r["net_cents"] / 100.0,
                "equity_pnl": change / 100.0,
                "return_pct": _pct(change, previous),
                "equity_end": end / 100.0,
            }
        )
        previous = end
    return out


def period_totals(report: RunReport, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The periods summed (in cents) beside the run's own totals, and whether they reconcile."""
    net = sum(cents(r["net_pnl"]) for r in rows)
    equity = sum(cents(r["equity_pnl"]) for r in rows)
    trades = sum(r["trades"] for r in rows)
    wins = sum(r["wins"] for r in rows)
    start = cents(float(report.config.get("cash", 0.0)))
    final = cents(report.marks[-1].equity) if report.marks else start
    total = cents(report.metrics.get("total_pnl", 0.0))
    return {
        "trades": trades,
        "wins": wins,
        "win_rate": round(wins / trades * 100.0, 4) if trades else None,
        "gross_pnl": sum(cents(r["gross_pnl"]) for r in rows) / 100.0,
        "commission": sum(cents(r["commission"]) for r in rows) / 100.0,
        "net_pnl": net / 100.0,
        "equity_pnl": equity / 100.0,
        "return_pct": _pct(final - start, start),
        "run_total_pnl": total / 100.0,
        "run_equity_change": (final - start) / 100.0,
        "reconciled": net == total and equity == final - start,
    }


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def expectation(
    backtest: RunReport, period: str, rows: Sequence[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """What a backtest of the same strategy leads to expect per period: the mean, 5 % and 95 %
    quantiles of its period returns and net P&L, and its win rate."""
    rows = period_rows(backtest, period) if rows is None else rows
    returns = [r["return_pct"] for r in rows if r["return_pct"] is not None]
    pnl = [r["net_pnl"] for r in rows]
    trades = sum(r["trades"] for r in rows)
    wins = sum(r["wins"] for r in rows)
    return {
        "run_id": backtest.run_id,
        "periods": len(rows),
        "mean_return_pct": round(math.fsum(returns) / len(returns), 4) if returns else None,
        "low_return_pct": round(_quantile(returns, 0.05), 4) if returns else None,
        "high_return_pct": round(_quantile(returns, 0.95), 4) if returns else None,
        "mean_net_pnl": round(math.fsum(pnl) / len(pnl), 2) if pnl else None,
        "win_rate": round(wins / trades * 100.0, 4) if trades else None,
    }


def beside_backtest(
    rows: list[dict[str, Any]], backtest_rows: Sequence[dict[str, Any]], expected: dict
) -> None:
    """Add the backtest's figures for the same period (when it covers it) and whether the period's
    return lies inside the backtest's 5-95 % range, to each row in place."""
    by_period = {r["period"]: r for r in backtest_rows}
    low, high = expected.get("low_return_pct"), expected.get("high_return_pct")
    for r in rows:
        same = by_period.get(r["period"])
        r["backtest_net_pnl"] = same["net_pnl"] if same else None
        r["backtest_return_pct"] = same["return_pct"] if same else None
        ret = r["return_pct"]
        r["in_expected_range"] = None if ret is None or low is None or high is None else low <= ret <= high
