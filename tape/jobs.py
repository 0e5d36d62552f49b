"""``tape.optimize``, ``tape.walkforward``, ``tape.validate``, ``tape.montecarlo``: validation jobs.

Each runs its backtests as Ray tasks (a local Ray unless ``address`` names a cluster) and appends one
BacktestSummary per backtest to the log. The commands of the same names call these functions
(``fn.__wrapped__``) and print ``summary`` with ``--json``, so the two cannot disagree.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tape.api import log_file, run_config
from tape.arguments import build_config, grid_args, param_args, strategy_arg
from tape.boundary import public
from tape.data_input import data_store, resolve_data
from tape.events.errors import ConfigError
from tape.result import JobResult, Result
from tape.run_options import RunOptions, run_keywords

Progress = Callable[[int, int], None]
PathLike = str | os.PathLike[str]


def _day(ts: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts / 1e9, tz=dt.UTC).strftime("%Y-%m-%d")


def _period(series: Any) -> str:
    """First to last day of the bars a job read."""
    stamps = [int(t) for s in series if len(s) for t in (s.ts[0], s.ts[-1])]
    return f"{_day(min(stamps))} to {_day(max(stamps))}" if stamps else ""


def _base_config(
    data: Any,
    strategy: Any,
    params: Any,
    start: str | None,
    end: str | None,
    cash: float,
    dataset: str,
    tz: str | None,
    no_check: bool,
    options: RunOptions,
    data_path: PathLike | None,
) -> tuple[Any, Any]:
    """A job's base config as ``tape backtest`` builds it from the same arguments, and the loader of
    DataFrame data (or None)."""
    _named(strategy)
    return run_config(data, strategy, params, start, end, cash, dataset, tz, no_check, options, data_path)


def _load(base: Any, loader: Any, data_path: PathLike | None) -> list[Any]:
    """The job's bars: the DataFrames', or the store's (then the bundled sample's)."""
    if loader is not None:
        return loader(base)  # type: ignore[no-any-return]
    from tape.store.backtests import load_config_bars

    return load_config_bars(base, data_store(data_path))


def _named(strategy: Any) -> None:
    # Ray workers load strategies by spec: a class that only this process knows cannot travel there.
    if not isinstance(strategy, str) and strategy_arg(strategy, None)[0].rpartition(":")[0] == "":
        raise ConfigError(
            "strategy: validation jobs run on Ray workers, which cannot see a class defined in a notebook "
            "or inside a function; define it at the top of a .py file, or pass 'file.py:Class'"
        )


def _candidates(grid: Any, random_n: int | None, seed: int) -> list[dict[str, Any]]:
    from tape.events.sweep import expand_grid, parse_grid_args, sample_grid

    parsed = parse_grid_args(grid_args(grid))
    return sample_grid(parsed, random_n, seed) if random_n else expand_grid(parsed)


@public
@run_keywords
def optimize(
    data: Any,
    strategy: Any = "sma_cross",
    *,
    grid: dict[str, Any] | list[str] | None = None,
    random: int | None = None,
    seed: int = 0,
    objective: str = "sharpe",
    params: dict[str, Any] | list[str] | None = None,
    start: str | None = None,
    end: str | None = None,
    dataset: str = "",
    cash: float = 100_000.0,
    options: RunOptions,
    tz: str | None = None,
    no_check: bool = False,
    address: str | None = None,
    workers: int | None = None,
    log: PathLike | None = None,
    data_path: PathLike | None = None,
    charts: PathLike | None = None,
    progress: Progress | None = None,
) -> JobResult:
    """Search strategy parameters on a (training) period (``tape optimize``).

    ``grid``: ``{"short": [5, 10], "long": [50, 100]}`` (or ``["short=5,10", "long=50,100"]``); every
    combination is backtested, or ``random`` of them drawn with ``seed``. ``objective``: sharpe,
    sortino, return, pnl, profit_factor, win_rate, recovery_factor or drawdown. ``params`` fixes the
    parameters the grid does not vary. ``data``, ``start``, ``end``, ``dataset``, ``cash``, ``tz``,
    ``log``, ``data_path`` and every cost, risk, sizing and filter keyword and ``timeframe``
    (``stop_loss``, ``qty``, ...): as for :func:`tape.backtest`, with the same defaults, so a job
    tests under the rules of a backtest given the same keywords. ``address``/``workers``: a Ray cluster, or
    the CPUs of a local Ray. ``charts``: a folder for the heatmap PNG (two varied parameters), as the
    command writes under ./charts; ``None`` writes no file.

    Returns a :class:`tape.JobResult`: ``summary`` is the dict of ``tape optimize --json``; ``table``
    one row a parameter set, best first (parameters, score, metrics).
    """
    import pandas as pd

    from tape.actors.validation import optimize as run_sweep
    from tape.events.sweep import objective_key

    objective_key(objective)
    base, loader = _base_config(
        data, strategy, params, start, end, cash, dataset, tz, no_check, options, data_path
    )
    candidates = _candidates(grid, random, seed)
    series = _load(base, loader, data_path)
    result = run_sweep(
        base,
        series,
        candidates,
        objective=objective,
        log_path=log_file(log),
        address=address,
        workers=workers,
        progress=progress,
    )
    names = sorted(result.ranked[0].params) if result.ranked else []
    varied = [n for n in names if len({str(r.params[n]) for r in result.ranked}) > 1]
    heatmap = None
    if charts is not None and len(varied) == 2:
        from tape.store.charts import plot_heatmap

        heatmap = plot_heatmap(
            [(r.params, r.score) for r in result.ranked],
            varied[0],
            varied[1],
            objective,
            Path(charts) / f"heatmap_{'-'.join(base.symbols)}_{base.strategy}_{result.job_id}.png",
            title=f"{base.strategy} on {', '.join(base.symbols)}, {_period(series)}",
        )
        from tape.store.html_jobs import sweep_page

        sweep_page(
            [(r.params, r.score) for r in result.ranked],
            varied[0],
            varied[1],
            objective,
            heatmap.with_suffix(".html"),
            title=f"{base.strategy} on {', '.join(base.symbols)}, {_period(series)}",
        )
    summary = {
        "job_id": result.job_id,
        "objective": objective,
        "best": {"params": result.ranked[0].params, **result.ranked[0].metrics} if result.ranked else None,
        "results": [{"params": r.params, "score": r.score, **r.metrics} for r in result.ranked],
        "skipped": result.skipped,
        "heatmap": str(heatmap) if heatmap else None,
    }
    table = pd.DataFrame([{**r.params, "score": r.score, **r.metrics} for r in result.ranked])
    table.index = pd.RangeIndex(1, len(table) + 1, name="rank")
    return JobResult("optimize", summary, table, raw=result)


@public
@run_keywords
def walkforward(
    data: Any,
    strategy: Any = "sma_cross",
    *,
    grid: dict[str, Any] | list[str] | None = None,
    train: float = 0.6,
    folds: int = 4,
    anchored: bool = False,
    objective: str = "sharpe",
    params: dict[str, Any] | list[str] | None = None,
    start: str | None = None,
    end: str | None = None,
    dataset: str = "",
    cash: float = 100_000.0,
    options: RunOptions,
    tz: str | None = None,
    no_check: bool = False,
    address: str | None = None,
    workers: int | None = None,
    log: PathLike | None = None,
    data_path: PathLike | None = None,
    charts: PathLike | None = None,
    progress: Progress | None = None,
) -> JobResult:
    """Optimise on each train window and test the winner out of sample (``tape walkforward``).

    ``folds`` windows, each ``train`` (a fraction in (0, 1)) training and the rest testing; rolling,
    or ``anchored`` (every fold trains from the start). ``grid``, ``objective`` and the rest: as for
    :func:`tape.optimize`; ``charts`` a folder for the stitched out-of-sample equity PNG.

    Returns a :class:`tape.JobResult`: ``summary`` is the dict of ``tape walkforward --json``
    (``oos_return_pct``, ``overfit_folds``, every fold); ``table`` one row a fold.
    """
    import pandas as pd

    from tape.actors.validation import walk_forward
    from tape.events.sweep import objective_key

    objective_key(objective)
    if not (0.0 < train < 1.0):
        raise ConfigError(f"--train must be a fraction strictly between 0 and 1, got {train:g}")
    base, loader = _base_config(
        data, strategy, params, start, end, cash, dataset, tz, no_check, options, data_path
    )
    candidates = _candidates(grid, None, 0)
    series = _load(base, loader, data_path)
    result = walk_forward(
        base,
        series,
        candidates,
        objective=objective,
        folds=folds,
        train=train,
        anchored=anchored,
        log_path=log_file(log),
        address=address,
        workers=workers,
        progress=progress,
    )
    chart = None
    if charts is not None and result.oos_ts:
        import numpy as np

        from tape.store.backtest_files import stitched_buy_and_hold
        from tape.store.charts import plot_walkforward

        windows = [(f.test_start_ts, f.test_end_ts) for f in result.folds]
        oos_ts = np.asarray(result.oos_ts, dtype=np.int64)
        hold = stitched_buy_and_hold(series, windows, oos_ts, base.cash)
        chart = plot_walkforward(
            Path(charts) / f"walkforward_{'-'.join(base.symbols)}_{base.strategy}_{result.job_id}.png",
            windows=windows,
            ts=oos_ts,
            equity=np.asarray(result.oos_equity),
            hold=hold,
            title=f"walk-forward out of sample: {base.strategy} on {', '.join(base.symbols)}, "
            f"{_period(series)}, {len(result.folds)} folds ({'anchored' if anchored else 'rolling'}, "
            f"{objective})",
        )
        from tape.store.html_jobs import walkforward_page

        walkforward_page(
            chart.with_suffix(".html"),
            windows=windows,
            ts=oos_ts,
            equity=np.asarray(result.oos_equity),
            hold=hold,
            title=f"{base.strategy} on {', '.join(base.symbols)}, {_period(series)}, "
            f"{len(result.folds)} folds ({'anchored' if anchored else 'rolling'}, {objective})",
            folds=[
                {
                    "fold": f.fold,
                    "train": [_day(f.train_start_ts), _day(f.train_end_ts)],
                    "test": [_day(f.test_start_ts), _day(f.test_end_ts)],
                    "params": f.params,
                    "efficiency": f.efficiency,
                }
                for f in result.folds
            ],
        )
    fold_rows = [
        {
            "fold": f.fold,
            "train": [_day(f.train_start_ts), _day(f.train_end_ts)],
            "test": [_day(f.test_start_ts), _day(f.test_end_ts)],
            "params": f.params,
            "train_metrics": f.train,
            "test_metrics": f.test,
            "efficiency": f.efficiency,
            "overfit": f.overfit,
        }
        for f in result.folds
    ]
    summary = {
        "job_id": result.job_id,
        "objective": objective,
        "oos_return_pct": round(result.oos_return_pct, 4),
        "overfit_folds": result.overfit_folds,
        "folds": fold_rows,
        "chart": str(chart) if chart else None,
    }
    table = pd.DataFrame(
        [
            {
                "fold": f.fold,
                "train_start": _day(f.train_start_ts),
                "train_end": _day(f.train_end_ts),
                "test_start": _day(f.test_start_ts),
                "test_end": _day(f.test_end_ts),
                **f.params,
                "train_return_pct": f.train.get("return_pct"),
                "test_return_pct": f.test.get("return_pct"),
                "efficiency": f.efficiency,
                "overfit": f.overfit,
            }
            for f in result.folds
        ]
    )
    if len(table):
        table = table.set_index("fold")
    return JobResult("walkforward", summary, table, raw=result)


@public
@run_keywords
def validate(
    data: Any = None,
    strategy: Any = "sma_cross",
    *,
    universe: str | None = None,
    params: dict[str, Any] | list[str] | None = None,
    periods: int = 4,
    start: str | None = None,
    end: str | None = None,
    dataset: str = "",
    cash: float = 100_000.0,
    options: RunOptions,
    tz: str | None = None,
    no_check: bool = False,
    address: str | None = None,
    workers: int | None = None,
    log: PathLike | None = None,
    data_path: PathLike | None = None,
    progress: Progress | None = None,
) -> JobResult:
    """Which symbols a strategy works on: each alone, over the whole range and ``periods`` equal
    slices of it (``tape validate``).

    ``data``: symbols (or DataFrames) as for :func:`tape.backtest`; ``universe``: "sample" or
    "sp500_20" (a bundled dataset's symbols) or "stored" (every stored daily series), added to them.
    The cost, risk, sizing and filter keywords and ``timeframe`` are :func:`tape.backtest`'s.
    Returns a :class:`tape.JobResult`: ``summary`` is the dict of ``tape validate --json``; ``table``
    one row a symbol, recommended ones first.
    """
    import pandas as pd

    from tape.actors.validation import validate_symbols
    from tape.store.market import BUNDLED_NAMES, bundled_symbols, list_datasets

    _named(strategy)
    chosen: list[Any] = []
    loader = None
    timeframe = options.timeframe or "1Day"
    if data is not None:
        source = resolve_data(
            data, dataset=dataset, tz=tz, timeframe=options.timeframe, data_path=data_store(data_path)
        )
        chosen, dataset, loader = list(source.symbols), source.dataset, source.loader
        timeframe = source.timeframe
    if universe == "stored":
        chosen += sorted({d.symbol for d in list_datasets(data_store(data_path)) if d.timeframe == timeframe})
    elif universe is not None:
        if dataset and dataset != universe:
            raise ConfigError(f"--universe {universe} reads its own dataset; drop --dataset {dataset}")
        if universe not in BUNDLED_NAMES:
            raise ConfigError(f"unknown universe {universe!r}; use {', '.join(BUNDLED_NAMES)} or stored")
        chosen += bundled_symbols(universe)
        dataset = universe
    if not chosen:
        raise ConfigError("name the symbols to validate, or pass --universe sample|sp500_20|stored")
    name, given = strategy_arg(strategy, param_args(params))
    base = build_config(
        chosen,
        name,
        given,
        start,
        end,
        cash,
        timeframe=timeframe,
        dataset=dataset,
        no_check=no_check,
        cost=options.cost(),
        risk=options.risk(),
    )
    series = _load(base, loader, data_path)
    result = validate_symbols(
        base,
        series,
        periods=periods,
        log_path=log_file(log),
        address=address,
        workers=workers,
        progress=progress,
    )
    summary = {
        "job_id": result.job_id,
        "strategy": result.strategy,
        "params": result.params,
        "periods": [[_day(lo), _day(hi)] for lo, hi in result.period_bounds],
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
    table = pd.DataFrame(
        [
            {
                "symbol": v.symbol,
                "recommended": v.recommended,
                "consistency": v.consistency,
                "profitable_periods": v.profitable_periods,
                **{k: v.full.get(k) for k in ("return_pct", "sharpe", "total_trades", "max_drawdown_pct")},
            }
            for v in result.symbols
        ]
    )
    if len(table):
        table = table.set_index("symbol")
    return JobResult("validate", summary, table, raw=result)


@public
def montecarlo(
    result: Any,
    *,
    n: int = 10_000,
    seed: int = 0,
    method: str = "bootstrap",
    ruin: float = 50.0,
    address: str | None = None,
    workers: int | None = None,
    log: PathLike | None = None,
    charts: PathLike | None = None,
) -> JobResult:
    """Shuffle (reorder) or bootstrap (resample) a run's closed trades ``n`` times (``tape montecarlo``).

    ``method``: "bootstrap" (resample trades with replacement: could the return have been luck?) or
    "shuffle" (reorder them: drawdown and streak risk; every path ends at the run's own return).
    ``result``: a :class:`tape.Result`, or a run id in ``log``. ``seed`` makes it repeatable; ``ruin``
    is the drawdown (%) that counts as ruin. ``charts``: a folder for the fan chart PNG.
    Returns a :class:`tape.JobResult`: ``summary`` is the dict of ``tape montecarlo --json``
    (quantiles of the final return and the max drawdown, probabilities of ruin and loss, a verdict);
    ``table`` those quantiles, one row a measure.
    """
    import msgspec
    import numpy as np
    import pandas as pd

    from tape.actors.jobs import run_montecarlo
    from tape.events.montecarlo import WHAT_IT_SAYS, verdict
    from tape.store.backtests import replay_report
    from tape.store.log import EventLog

    if method not in ("shuffle", "bootstrap"):
        raise ConfigError(f"unknown method {method!r}; choose shuffle or bootstrap")
    if n < 1:
        raise ConfigError(f"--n must be at least 1, got {n}")
    if isinstance(result, Result):
        report = result.report
    elif isinstance(result, str):
        with EventLog.open(log_file(log), readonly=True) as opened:
            report = replay_report(opened, result)
    else:
        raise ConfigError(f"result must be a tape.Result or a run id, got {type(result).__name__}")
    pnls = np.array([t.pnl for t in report.trades])
    if pnls.size == 0:
        raise ConfigError(f"run {report.run_id} has no closed trades to resample")
    simulated = run_montecarlo(
        pnls,
        start_equity=float(report.config.get("cash", 100_000.0)),
        n=n,
        seed=seed,
        method=method,
        ruin_drawdown_pct=ruin,
        address=address,
        workers=workers,
    )
    chart = None
    if charts is not None:
        from tape.store.charts import plot_fan

        chart = plot_fan(
            simulated.bands,
            f"Monte Carlo ({method}, n={n:,}, seed={seed}) of run {report.run_id}: {report.strategy} "
            f"on {', '.join(report.symbols)}",
            Path(charts) / f"montecarlo_{report.run_id}_{method}.png",
            actual=simulated.start_equity + np.r_[0.0, np.cumsum(pnls)],
            note=WHAT_IT_SAYS[method],
        )
        from tape.store.html_jobs import montecarlo_page

        montecarlo_page(
            chart.with_suffix(".html"),
            simulated.bands,
            f"{method}, n={n:,}, seed={seed}, run {report.run_id}: {report.strategy} on "
            f"{', '.join(report.symbols)}",
            actual=simulated.start_equity + np.r_[0.0, np.cumsum(pnls)],
            note=WHAT_IT_SAYS[method],
        )
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
