"""``tape.optimize``, ``tape.walkforward``, ``tape.validate``, ``tape.montecarlo``: validation jobs.

Each runs its backtests as Ray tasks (a local Ray unless ``address`` names a cluster) and appends one
BacktestSummary per backtest to the log. The commands of the same names call these functions
(``fn.__wrapped__``) and print ``summary`` with ``--json``, so the two cannot disagree.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from tape.api import log_file, run_config
from tape.arguments import build_config, grid_args, param_args, strategy_arg
from tape.boundary import public
from tape.data_input import data_store, resolve_data
from tape.events.errors import ConfigError
from tape.job_outputs import (
    montecarlo_chart,
    montecarlo_result,
    optimize_heatmap,
    optimize_result,
    validate_result,
    walkforward_chart,
    walkforward_result,
)
from tape.result import JobResult, Result
from tape.run_options import RunOptions, run_keywords

Progress = Callable[[int, int], None]
PathLike = str | os.PathLike[str]


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

    from tape.actors.validation import optimize as run_sweep
    from tape.events.sweep import objective_key

    objective_key(objective)
    _named(strategy)
    base, loader = run_config(
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
    heatmap = optimize_heatmap(result, base, series, objective, charts)
    return optimize_result(result, objective, heatmap)


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

    from tape.actors.validation import walk_forward
    from tape.events.sweep import objective_key

    objective_key(objective)
    if not (0.0 < train < 1.0):
        raise ConfigError(f"--train must be a fraction strictly between 0 and 1, got {train:g}")
    _named(strategy)
    base, loader = run_config(
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
    chart = walkforward_chart(result, base, series, objective, anchored, charts)
    return walkforward_result(result, objective, chart)


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

    from tape.actors.validation import validate_symbols

    _named(strategy)
    chosen, dataset, timeframe, loader = _validation_symbols(data, universe, dataset, tz, options, data_path)
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
    from tape.store.shortable import with_stored_shortable

    base = with_stored_shortable(base, data_store(data_path))
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
    return validate_result(result)


def _validation_symbols(
    data: Any, universe: str | None, dataset: str, tz: str | None, options: RunOptions, data_path: Any
) -> tuple[list[Any], str, str, Any]:
    """The symbols ``validate`` runs (given ones, then a universe's), their dataset and bar size, and
    the loader of DataFrame data (or None)."""
    from tape.store.market import BUNDLED_NAMES, bundled_symbols, list_datasets

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
    return chosen, dataset, timeframe, loader


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
    import numpy as np

    from tape.actors.jobs import run_montecarlo
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
    chart = montecarlo_chart(simulated, report, pnls, method, n, seed, charts)
    return montecarlo_result(simulated, report, method, chart)
