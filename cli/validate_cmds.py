"""`tape optimize`, `tape walkforward`, `tape montecarlo`: validation jobs run as Ray tasks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from tape.cli import options as opt
from tape.cli.common import console, err_console, fmt_ts, print_json, settings
from tape.events.backtest import BacktestConfig
from tape.events.errors import ConfigError
from tape.events.sweep import expand_grid, objective_key, parse_grid_args, sample_grid

Workers = Annotated[int | None, typer.Option("--workers", min=1, help="CPUs for a local Ray (default: all).")]


@contextmanager
def _progress(label: str, enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    if not enabled:
        yield None
        return
    bar = Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    task: list[TaskID] = []

    def update(done: int, total: int) -> None:
        if not task:
            bar.start()
            task.append(bar.add_task(label, total=total))
        bar.update(task[0], completed=done, total=total)

    try:
        yield update
    finally:
        bar.stop()


def _candidates(grid: list[str], random_n: int | None, seed: int) -> list[dict[str, Any]]:
    parsed = parse_grid_args(grid)
    return sample_grid(parsed, random_n, seed) if random_n else expand_grid(parsed)


def _load(base: BacktestConfig, data_path: Path) -> list[Any]:
    from tape.store.backtests import load_config_bars

    return load_config_bars(base, data_path)


def optimize_cmd(
    ctx: typer.Context,
    symbols: opt.Symbols,
    strategy: opt.Strategy = "sma_cross",
    grid: Annotated[
        list[str] | None, typer.Option("--grid", "-g", help="NAME=V1,V2,... (repeatable).")
    ] = None,
    random_n: Annotated[
        int | None, typer.Option("--random", min=1, help="Try N random grid points instead of all.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of --random.")] = 0,
    objective: Annotated[
        str,
        typer.Option(
            "--objective",
            help="sharpe, sortino, return, pnl, profit_factor, win_rate, recovery_factor, drawdown.",
        ),
    ] = "sharpe",
    param: opt.Params = None,
    start: Annotated[str | None, typer.Option("--start", help="Training period start (YYYY-MM-DD).")] = None,
    end: Annotated[str | None, typer.Option("--end", help="Training period end (YYYY-MM-DD).")] = None,
    dataset: opt.Dataset = "",
    cash: opt.Cash = 100_000.0,
    top: Annotated[int, typer.Option("--top", min=1, help="Rows to show.")] = 10,
    address: opt.Address = None,
    workers: Workers = None,
    json: opt.Json = False,
) -> None:
    """Search strategy parameters on the given (training) period; ranked table and a heatmap PNG."""
    from tape.actors.validation import optimize
    from tape.store.charts import plot_heatmap

    objective_key(objective)
    base = opt.build_config(symbols, strategy, param, start, end, cash, dataset=dataset)
    candidates = _candidates(grid or [], random_n, seed)
    series = _load(base, settings(ctx).data_path)
    with _progress("optimize", not json and err_console.is_terminal) as update:
        result = optimize(
            base,
            series,
            candidates,
            objective=objective,
            log_path=settings(ctx).log_path,
            address=address,
            workers=workers,
            progress=update,
        )
    names = sorted(result.ranked[0].params) if result.ranked else []
    varied = [n for n in names if len({str(r.params[n]) for r in result.ranked}) > 1]
    heatmap = None
    if len(varied) == 2:
        heatmap = plot_heatmap(
            [(r.params, r.score) for r in result.ranked],
            varied[0],
            varied[1],
            objective,
            Path.cwd() / "charts" / f"heatmap_{'-'.join(base.symbols)}_{strategy}.png",
        )
    if json:
        print_json(
            {
                "job_id": result.job_id,
                "objective": objective,
                "best": {"params": result.ranked[0].params, **result.ranked[0].metrics},
                "results": [{"params": r.params, "score": r.score, **r.metrics} for r in result.ranked],
                "skipped": result.skipped,
                "heatmap": str(heatmap) if heatmap else None,
            }
        )
        return
    key, _ = objective_key(objective)
    table = Table(
        title=f"{strategy} on {' '.join(base.symbols)}: {len(result.ranked)} parameter sets by {objective}"
    )
    for column in ("#", "params", key, "return %", "trades", "max dd %", "win %"):
        table.add_column(column, justify="left" if column == "params" else "right")
    for i, r in enumerate(result.ranked[:top], start=1):
        m = r.metrics
        table.add_row(
            str(i),
            " ".join(f"{k}={v}" for k, v in r.params.items()),
            _num(m.get(key)),
            _num(m.get("return_pct")),
            _num(m.get("total_trades"), 0),
            _num(m.get("max_drawdown_pct")),
            _num(m.get("win_rate")),
        )
    console.print(table)
    for line in result.skipped[:5]:
        err_console.print(f"[yellow]skipped[/yellow] {line}")
    console.print(
        f"job {result.job_id}: {result.appended} summaries appended to the log"
        + (f"; heatmap {heatmap}" if heatmap else "")
    )


def _num(value: Any, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def walkforward_cmd(
    ctx: typer.Context,
    symbols: opt.Symbols,
    strategy: opt.Strategy = "sma_cross",
    grid: Annotated[
        list[str] | None, typer.Option("--grid", "-g", help="NAME=V1,V2,... (repeatable).")
    ] = None,
    train: Annotated[
        float, typer.Option("--train", callback=opt.finite, help="Train share of each fold, in (0, 1).")
    ] = 0.6,
    folds: Annotated[int, typer.Option("--folds", help="Number of folds.")] = 4,
    anchored: Annotated[
        bool, typer.Option("--anchored", help="Train from the start every fold (expanding window).")
    ] = False,
    objective: Annotated[str, typer.Option("--objective", help="What the train phase maximises.")] = "sharpe",
    param: opt.Params = None,
    start: opt.Start = None,
    end: opt.End = None,
    dataset: opt.Dataset = "",
    cash: opt.Cash = 100_000.0,
    address: opt.Address = None,
    workers: Workers = None,
    json: opt.Json = False,
) -> None:
    """Optimise on each train window, test the winner out of sample; flag overfitting; stitched OOS curve."""
    from tape.actors.validation import walk_forward
    from tape.store.charts import plot_equity_line

    objective_key(objective)
    if not (0.0 < train < 1.0):
        raise ConfigError(f"--train must be a fraction strictly between 0 and 1, got {train:g}")
    base = opt.build_config(symbols, strategy, param, start, end, cash, dataset=dataset)
    candidates = _candidates(grid or [], None, 0)
    series = _load(base, settings(ctx).data_path)
    with _progress("walk-forward", not json and err_console.is_terminal) as update:
        result = walk_forward(
            base,
            series,
            candidates,
            objective=objective,
            folds=folds,
            train=train,
            anchored=anchored,
            log_path=settings(ctx).log_path,
            address=address,
            workers=workers,
            progress=update,
        )
    chart = (
        plot_equity_line(
            result.oos_ts,
            result.oos_equity,
            f"walk-forward out-of-sample equity: {strategy} on {' '.join(base.symbols)}",
            Path.cwd() / "charts" / f"walkforward_{'-'.join(base.symbols)}_{strategy}.png",
        )
        if result.oos_ts
        else None
    )
    if json:
        out = {
            "job_id": result.job_id,
            "objective": objective,
            "oos_return_pct": round(result.oos_return_pct, 4),
            "overfit_folds": result.overfit_folds,
            "folds": [
                {
                    "fold": f.fold,
                    "train": [
                        fmt_ts(f.train_start_ts, date_only=True),
                        fmt_ts(f.train_end_ts, date_only=True),
                    ],
                    "test": [fmt_ts(f.test_start_ts, date_only=True), fmt_ts(f.test_end_ts, date_only=True)],
                    "params": f.params,
                    "train_metrics": f.train,
                    "test_metrics": f.test,
                    "efficiency": f.efficiency,
                    "overfit": f.overfit,
                }
                for f in result.folds
            ],
            "chart": str(chart) if chart else None,
        }
        print_json(out)
        return
    table = Table(
        title=f"walk-forward of {strategy} on {' '.join(base.symbols)} "
        f"({'anchored' if anchored else 'rolling'}, {objective})"
    )
    for column in ("fold", "train", "test", "params", "train ret %", "test ret %", "efficiency", ""):
        table.add_column(column, justify="left" if column in ("train", "test", "params", "") else "right")
    for f in result.folds:
        table.add_row(
            str(f.fold),
            f"{fmt_ts(f.train_start_ts, date_only=True)}..{fmt_ts(f.train_end_ts, date_only=True)}",
            f"{fmt_ts(f.test_start_ts, date_only=True)}..{fmt_ts(f.test_end_ts, date_only=True)}",
            " ".join(f"{k}={v}" for k, v in f.params.items()),
            _num(f.train.get("return_pct")),
            _num(f.test.get("return_pct")),
            _num(f.efficiency),
            "[red]overfit?[/red]" if f.overfit else "",
        )
    console.print(table)
    console.print(
        f"out-of-sample return (stitched): {result.oos_return_pct:.2f} %; "
        f"{result.overfit_folds} of {len(result.folds)} folds "
        f"flagged (test below {0.5:.0%} of train, annualised); job {result.job_id}"
        + (f"; chart {chart}" if chart else "")
    )


def montecarlo_cmd(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="A backtest run id (or a unique prefix).")],
    n: Annotated[int, typer.Option("--n", help="Simulations.")] = 10_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same result).")] = 0,
    method: Annotated[
        str, typer.Option("--method", help="shuffle (reorder trades) or bootstrap (resample).")
    ] = "shuffle",
    ruin: Annotated[
        float, typer.Option("--ruin", callback=opt.finite, help="Drawdown (%) that counts as ruin.")
    ] = 50.0,
    address: opt.Address = None,
    workers: Workers = None,
    json: opt.Json = False,
) -> None:
    """Shuffle or resample a run's trades: return and drawdown distributions, ruin odds, a fan chart."""
    import numpy as np

    from tape.actors.jobs import run_montecarlo
    from tape.events.montecarlo import verdict
    from tape.store.backtests import replay_report
    from tape.store.charts import plot_fan
    from tape.store.log import EventLog

    if method not in ("shuffle", "bootstrap"):
        raise ConfigError(f"unknown method {method!r}; choose shuffle or bootstrap")
    if n < 1:
        raise ConfigError(f"--n must be at least 1, got {n}")
    with EventLog.open(settings(ctx).log_path, readonly=True) as log:
        report = replay_report(log, run_id)
    pnls = np.array([t.pnl for t in report.trades])
    if pnls.size == 0:
        raise ConfigError(f"run {report.run_id} has no closed trades to resample")
    result = run_montecarlo(
        pnls,
        start_equity=float(report.config.get("cash", 100_000.0)),
        n=n,
        seed=seed,
        method=method,
        ruin_drawdown_pct=ruin,
        address=address,
        workers=workers,
    )
    chart = plot_fan(
        result.bands,
        f"Monte Carlo ({method}, n={n}, seed={seed}) of run {report.run_id}",
        Path.cwd() / "charts" / f"montecarlo_{report.run_id}.png",
    )
    reading = verdict(result)
    if json:
        out = {k: v for k, v in __import__("msgspec").to_builtins(result).items() if k != "bands"}
        print_json({"run_id": report.run_id, **out, "verdict": reading, "chart": str(chart)})
        return
    table = Table(
        title=f"Monte Carlo of {report.run_id}: {result.trades} trades, {n:,} {method} paths, seed {seed}"
    )
    table.add_column("")
    for q in ("p5", "p25", "p50", "p75", "p95", "mean"):
        table.add_column(q, justify="right")
    for label, stats in (
        ("final return %", result.final_return_pct),
        ("max drawdown %", result.max_drawdown_pct),
    ):
        table.add_row(label, *(f"{stats[q]:.2f}" for q in ("p5", "p25", "p50", "p75", "p95", "mean")))
    console.print(table)
    console.print(
        f"probability of ruin ({ruin:g} % drawdown): {result.prob_ruin:.2%}; "
        f"of a loss: {result.prob_loss:.2%}"
    )
    console.print(f"verdict: {reading}")
    console.print(f"fan chart: {chart}")


def validate_cmd(
    ctx: typer.Context,
    symbols: Annotated[list[str] | None, typer.Argument(help="Symbols to validate one by one.")] = None,
    universe: Annotated[
        str | None,
        typer.Option(
            "--universe",
            help="sample or sp500_20 (bundled datasets), or stored (every stored daily series).",
        ),
    ] = None,
    strategy: opt.Strategy = "sma_cross",
    param: opt.Params = None,
    periods: Annotated[int, typer.Option("--periods", min=1, help="Equal slices of the range to test.")] = 4,
    start: opt.Start = None,
    end: opt.End = None,
    dataset: opt.Dataset = "",
    cash: opt.Cash = 100_000.0,
    address: opt.Address = None,
    workers: Workers = None,
    json: opt.Json = False,
) -> None:
    """Which symbols a strategy works on: each symbol alone over the whole range and several periods."""
    from tape.actors.validation import validate_symbols
    from tape.store.market import BUNDLED_NAMES, bundled_symbols, list_datasets

    chosen = list(symbols or [])
    if universe == "stored":
        chosen += sorted({d.symbol for d in list_datasets(settings(ctx).data_path) if d.timeframe == "1Day"})
    elif universe is not None:
        if dataset and dataset != universe:
            raise ConfigError(f"--universe {universe} reads its own dataset; drop --dataset {dataset}")
        if universe not in BUNDLED_NAMES:
            raise ConfigError(f"unknown universe {universe!r}; use {', '.join(BUNDLED_NAMES)} or stored")
        chosen += bundled_symbols(universe)
        dataset = universe
    if not chosen:
        raise ConfigError("name the symbols to validate, or pass --universe sample|sp500_20|stored")
    base = opt.build_config(chosen, strategy, param, start, end, cash, dataset=dataset)
    series = _load(base, settings(ctx).data_path)
    with _progress("validate", not json and err_console.is_terminal) as update:
        result = validate_symbols(
            base,
            series,
            periods=periods,
            log_path=settings(ctx).log_path,
            address=address,
            workers=workers,
            progress=update,
        )
    if json:
        print_json(
            {
                "job_id": result.job_id,
                "strategy": result.strategy,
                "params": result.params,
                "periods": [
                    [fmt_ts(lo, date_only=True), fmt_ts(hi, date_only=True)]
                    for lo, hi in result.period_bounds
                ],
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
        )
        return
    table = Table(title=f"{strategy} {result.params} on {len(result.symbols)} symbols, {periods} periods")
    for column in ("symbol", "return %", "sharpe", "trades", "max dd %", "profitable periods", "trade it?"):
        table.add_column(column, justify="left" if column in ("symbol", "trade it?") else "right")
    for v in result.symbols:
        table.add_row(
            v.symbol,
            _num(v.full.get("return_pct")),
            _num(v.full.get("sharpe")),
            _num(v.full.get("total_trades"), 0),
            _num(v.full.get("max_drawdown_pct")),
            f"{v.profitable_periods}/{len(v.periods)}",
            "[green]yes[/green]" if v.recommended else "no",
        )
    console.print(table)
    good = [v.symbol for v in result.symbols if v.recommended]
    console.print(
        "recommended (profitable in >= 60 % of periods, positive Sharpe overall): "
        f"{', '.join(good) or 'none'}; job {result.job_id}, {result.appended} summaries appended"
    )
