"""`tape report --period`: a run's summaries by calendar period beside a backtest of the same strategy,
and the backtest expectation the monitor's degradation rule compares a live run with.

The reference backtest is the newest backtest in the log with the same strategy and parameters,
preferring one over the same symbols; it must not be the run itself.
"""

from __future__ import annotations

from typing import Any

from tape.events.monitor import expected_low, window_returns
from tape.events.notifications import notification_health
from tape.events.periods import beside_backtest, expectation, period_rows, period_totals
from tape.events.report import RunReport
from tape.events.schema import RunStarted
from tape.store.backtests import replay_report
from tape.store.log import EventLog, LogError
from tape.store.runs import find_run, list_runs


def newest_run(log: EventLog) -> str:
    """The id of the most recently started run; a clear error for a log without runs."""
    rows = log.query(
        "SELECT stream FROM events WHERE stream >= 'run/' AND stream < 'run0' AND version = 1 "
        "AND kind = 'run_started' ORDER BY seq DESC LIMIT 1"
    )
    if not rows:
        raise LogError(f"no runs in {log.path} yet (try `tape backtest AAPL`)")
    return str(rows[0][0])[len("run/") :]


def reference_backtest(
    log: EventLog, strategy: str, params: dict[str, Any], symbols: list[str], exclude: str = ""
) -> str | None:
    """The newest backtest of the same strategy and parameters (same symbols preferred), or None."""
    same_strategy: list[str] = []
    same_symbols: list[str] = []
    for info in list_runs(log):
        if info.mode != "backtest" or info.run_id == exclude or info.strategy != strategy:
            continue
        started = find_run(log, info.run_id)
        if dict(started.params) != dict(params):
            continue
        same_strategy.append(info.run_id)
        if sorted(started.symbols) == sorted(symbols):
            same_symbols.append(info.run_id)
    found = same_symbols or same_strategy
    return found[-1] if found else None


def degradation_floor(log: EventLog, run_id: str, window: int, quantile_pct: float) -> float | None:
    """The low edge of a backtest's rolling ``window``-session returns (its ``quantile_pct`` quantile)."""
    report = replay_report(log, run_id)
    marks = [m.equity for m in report.marks]
    held = [m.bars_in_market > 0 for m in report.marks]
    returns = window_returns(float(report.config.get("cash", 0.0)), marks, held, window)
    return expected_low(returns, quantile_pct)


def run_notification_health(log: EventLog, run_id: str) -> dict[str, Any]:
    """Delivery health of a run's notifications (from its ``run/<id>/notify`` stream)."""
    return notification_health(log.events(stream=f"run/{run_id}/notify"))


def period_report(log: EventLog, run_id: str, period: str) -> dict[str, Any]:
    """The run's rows for ``period`` with totals, the reference backtest's expectation beside them,
    and its notification health."""
    started: RunStarted = find_run(log, run_id)
    report: RunReport = replay_report(log, started.run_id)
    rows = period_rows(report, period)
    out: dict[str, Any] = {
        "run_id": report.run_id,
        "mode": report.mode,
        "strategy": report.strategy,
        "symbols": report.symbols,
        "period": period,
        "status": report.status,
        "start_equity": round(float(report.config.get("cash", 0.0)), 2),
        "rows": rows,
        "totals": period_totals(report, rows),
        "expected": None,
        "notifications": run_notification_health(log, report.run_id),
    }
    reference = reference_backtest(
        log, started.strategy, dict(started.params), list(started.symbols), exclude=started.run_id
    )
    if reference is not None:
        backtest = replay_report(log, reference)
        backtest_rows = period_rows(backtest, period)
        expected = expectation(backtest, period, backtest_rows)
        beside_backtest(rows, backtest_rows, expected)
        out["expected"] = expected
    return out
