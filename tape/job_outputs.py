"""What a validation job hands back: its ``--json`` summary, its pandas table and its chart.

:mod:`tape.jobs` runs the jobs; the functions here only shape a finished job's result, so the command
and the Python API print and return the same thing.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from tape.result import JobResult

PathLike = str | os.PathLike[str]


def day(ts: int) -> str:
    """A bar time (ns since the epoch, UTC) as its date."""
    return dt.datetime.fromtimestamp(ts / 1e9, tz=dt.UTC).strftime("%Y-%m-%d")


def period(series: Any) -> str:
    """First to last day of the bars a job read."""
    stamps = [int(t) for s in series if len(s) for t in (s.ts[0], s.ts[-1])]
    return f"{day(min(stamps))} to {day(max(stamps))}" if stamps else ""


def _indexed(rows: list[dict[str, Any]], index: str | None = None) -> Any:
    import pandas as pd

    table = pd.DataFrame(rows)
    if index is None:
        table.index = pd.RangeIndex(1, len(table) + 1, name="rank")
    elif len(table):
        table = table.set_index(index)
    return table


def optimize_heatmap(result: Any, base: Any, series: Any, objective: str, charts: PathLike | None) -> Any:
    """The score heatmap PNG of a sweep that varied exactly two parameters (else None)."""
    names = sorted(result.ranked[0].params) if result.ranked else []
    varied = [n for n in names if len({str(r.params[n]) for r in result.ranked}) > 1]
    if charts is None or len(varied) != 2:
        return None
    from tape.store.backtest_files import symbols_label, symbols_phrase
    from tape.store.charts import plot_heatmap
    from tape.store.html_jobs import sweep_page

    scores = [(r.params, r.score) for r in result.ranked]
    title = f"{base.strategy} on {symbols_phrase(base.symbols, base.dataset)}, {period(series)}"
    label = symbols_label(base.symbols, base.dataset)
    png = Path(charts) / f"heatmap_{label}_{base.strategy}_{result.job_id}.png"
    heatmap = plot_heatmap(scores, varied[0], varied[1], objective, png, title=title)
    sweep_page(scores, varied[0], varied[1], objective, heatmap.with_suffix(".html"), title=title)
    return heatmap


def optimize_result(result: Any, objective: str, heatmap: Any) -> JobResult:
    """``tape optimize``'s summary and its ranked table (one row a parameter set, best first)."""
    ranked = result.ranked
    summary = {
        "job_id": result.job_id,
        "objective": objective,
        "best": {"params": ranked[0].params, **ranked[0].metrics} if ranked else None,
        "results": [{"params": r.params, "score": r.score, **r.metrics} for r in ranked],
        "skipped": result.skipped,
        "heatmap": str(heatmap) if heatmap else None,
    }
    table = _indexed([{**r.params, "score": r.score, **r.metrics} for r in ranked])
    return JobResult("optimize", summary, table, raw=result)


def walkforward_chart(
    result: Any, base: Any, series: Any, objective: str, anchored: bool, charts: PathLike | None
) -> Any:
    """The stitched out-of-sample equity PNG with buy and hold over the same windows (or None)."""
    if charts is None or not result.oos_ts:
        return None
    import numpy as np

    from tape.store.backtest_files import stitched_buy_and_hold, symbols_label, symbols_phrase
    from tape.store.charts import plot_walkforward
    from tape.store.html_jobs import walkforward_page

    windows = [(f.test_start_ts, f.test_end_ts) for f in result.folds]
    oos_ts = np.asarray(result.oos_ts, dtype=np.int64)
    equity = np.asarray(result.oos_equity)
    hold = stitched_buy_and_hold(series, windows, oos_ts, base.cash)
    what = (
        f"{base.strategy} on {symbols_phrase(base.symbols, base.dataset)}, {period(series)}, "
        f"{len(result.folds)} folds "
        f"({'anchored' if anchored else 'rolling'}, {objective})"
    )
    label = symbols_label(base.symbols, base.dataset)
    chart = plot_walkforward(
        Path(charts) / f"walkforward_{label}_{base.strategy}_{result.job_id}.png",
        windows=windows,
        ts=oos_ts,
        equity=equity,
        hold=hold,
        title=f"walk-forward out of sample: {what}",
    )
    folds = [
        {
            "fold": f.fold,
            "train": [day(f.train_start_ts), day(f.train_end_ts)],
            "test": [day(f.test_start_ts), day(f.test_end_ts)],
            "params": f.params,
            "efficiency": f.efficiency,
        }
        for f in result.folds
    ]
    page = chart.with_suffix(".html")
    walkforward_page(page, windows=windows, ts=oos_ts, equity=equity, hold=hold, title=what, folds=folds)
    return chart


def walkforward_result(result: Any, objective: str, chart: Any) -> JobResult:
    """``tape walkforward``'s summary (every fold) and its table (one row a fold)."""
    folds = result.folds
    summary = {
        "job_id": result.job_id,
        "objective": objective,
        "oos_return_pct": round(result.oos_return_pct, 4),
        "overfit_folds": result.overfit_folds,
        "folds": [
            {
                "fold": f.fold,
                "train": [day(f.train_start_ts), day(f.train_end_ts)],
                "test": [day(f.test_start_ts), day(f.test_end_ts)],
                "params": f.params,
                "train_metrics": f.train,
                "test_metrics": f.test,
                "efficiency": f.efficiency,
                "overfit": f.overfit,
            }
            for f in folds
        ],
        "chart": str(chart) if chart else None,
    }
    rows = [
        {
            "fold": f.fold,
            "train_start": day(f.train_start_ts),
            "train_end": day(f.train_end_ts),
            "test_start": day(f.test_start_ts),
            "test_end": day(f.test_end_ts),
            **f.params,
            "train_return_pct": f.train.get("return_pct"),
            "test_return_pct": f.test.get("return_pct"),
            "efficiency": f.efficiency,
            "overfit": f.overfit,
        }
        for f in folds
    ]
    return JobResult("walkforward", summary, _indexed(rows, "fold"), raw=result)


def validate_result(result: Any) -> JobResult:
    """``tape validate``'s summary and its table (one row a symbol, recommended ones first)."""
    summary = {
        "job_id": result.job_id,
        "strategy": result.strategy,
        "params": result.params,
        "periods": [[day(lo), day(hi)] for lo, hi in result.period_bounds],
        "symbols": [
            {
                "symbol": v.symbol,
                "recommended": v.recommended,
                "consistency": v.consistency,
                "profitable_periods": v.profitable_periods,
                "full": v.full,
                "periods": v.periods,
            }
            for v in result.symbols
        ],
    }
    rows = [
        {
            "symbol": v.symbol,
            "recommended": v.recommended,
            "consistency": v.consistency,
            "profitable_periods": v.profitable_periods,
            **{k: v.full.get(k) for k in ("return_pct", "sharpe", "total_trades", "max_drawdown_pct")},
        }
        for v in result.symbols
    ]
    return JobResult("validate", summary, _indexed(rows, "symbol"), raw=result)


def montecarlo_chart(
    simulated: Any, report: Any, pnls: Any, method: str, n: int, seed: int, charts: PathLike | None
) -> Any:
    """The fan chart PNG of the simulated equity paths with the run's actual path (or None)."""
    if charts is None:
        return None
    import numpy as np

    from tape.events.montecarlo import WHAT_IT_SAYS
    from tape.store.backtest_files import symbols_phrase
    from tape.store.charts import plot_fan
    from tape.store.html_jobs import montecarlo_page

    actual = simulated.start_equity + np.r_[0.0, np.cumsum(pnls)]
    symbols = symbols_phrase(report.symbols, report.config.get("dataset") or "")
    what = f"run {report.run_id}: {report.strategy} on {symbols}"
    chart = plot_fan(
        simulated.bands,
        f"Monte Carlo ({method}, n={n:,}, seed={seed}) of {what}",
        Path(charts) / f"montecarlo_{report.run_id}_{method}.png",
        actual=actual,
        note=WHAT_IT_SAYS[method],
    )
    title = f"{method}, n={n:,}, seed={seed}, {what}"
    montecarlo_page(
        chart.with_suffix(".html"), simulated.bands, title, actual=actual, note=WHAT_IT_SAYS[method]
    )
    return chart


def montecarlo_result(simulated: Any, report: Any, method: str, chart: Any) -> JobResult:
    """``tape montecarlo``'s summary (quantiles, probabilities, verdict) and its quantile table."""
    import msgspec
    import pandas as pd

    from tape.events.montecarlo import WHAT_IT_SAYS, verdict

    out = {k: v for k, v in msgspec.to_builtins(simulated).items() if k != "bands"}
    summary = {
        "run_id": report.run_id,
        **out,
        "verdict": verdict(simulated),
        "reads": WHAT_IT_SAYS[method],
        "chart": str(chart) if chart else None,
    }
    table = pd.DataFrame(
        {"final_return_pct": simulated.final_return_pct, "max_drawdown_pct": simulated.max_drawdown_pct}
    ).T
    return JobResult("montecarlo", summary, table, raw=simulated)
