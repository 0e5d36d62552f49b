"""`tape optimize`, `tape walkforward`, `tape montecarlo`: validation jobs run as Ray tasks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from tape.cli import options as opt
from tape.cli.common import console, err_console, fmt_ts, print_json, settings
from tape.events.sweep import objective_key

if TYPE_CHECKING:
    from rich.progress import TaskID

Workers = Annotated[int | None, typer.Option("--workers", min=1, help="CPUs for a local Ray (default: all).")]


@contextmanager
def _progress(label: str, enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

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


@opt.run_options()
def optimize_cmd(
    ctx: typer.Context,
    symbols: Annotated[
        list[str] | None,
        typer.Argument(help="One or more symbols; several share cash and limits (or --universe)."),
    ] = None,
    strategy: opt.Strategy = "sma_cross",
    universe: Annotated[
        str | None,
        typer.Option("--universe", help="Every symbol of a bundled dataset (sample, sp500_20) or stored."),
    ] = None,
    no_check: opt.NoCheck = False,
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
    *,
    options: opt.RunOptions,
) -> None:
    """Search strategy parameters on the given (training) period; ranked table and a heatmap PNG."""
    from tape.api import universe_data
    from tape.jobs import optimize

    where = settings(ctx)
    data = universe_data(symbols or None, universe, options.timeframe, where.data_path)
    with _progress("optimize", not json and err_console.is_terminal) as update:
        job = optimize.__wrapped__(
            data,
            strategy,
            grid=grid or [],
            random=random_n,
            seed=seed,
            objective=objective,
            params=param,
            start=start,
            end=end,
            dataset=dataset,
            cash=cash,
            **options,
            no_check=no_check,
            address=address,
            workers=workers,
            log=where.log_path,
            data_path=where.data_path,
            charts=Path.cwd() / "charts",
            progress=update,
        )
    if json:
        print_json(job.summary)
        return
    result, heatmap = job.raw, job.summary["heatmap"]
    base_symbols = _named_symbols(symbols, universe)
    key, _ = objective_key(objective)
    table = Table(
        title=f"{strategy} on {' '.join(base_symbols)}: {len(result.ranked)} parameter sets by {objective}"
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


@opt.run_options()
def walkforward_cmd(
    ctx: typer.Context,
    symbols: Annotated[
        list[str] | None,
        typer.Argument(help="One or more symbols; several share cash and limits (or --universe)."),
    ] = None,
    strategy: opt.Strategy = "sma_cross",
    universe: Annotated[
        str | None,
        typer.Option("--universe", help="Every symbol of a bundled dataset (sample, sp500_20) or stored."),
    ] = None,
    no_check: opt.NoCheck = False,
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
    *,
    options: opt.RunOptions,
) -> None:
    """Optimise on each train window, test the winner out of sample; flag overfitting; stitched OOS curve."""
    from tape.api import universe_data
    from tape.jobs import walkforward

    where = settings(ctx)
    data = universe_data(symbols or None, universe, options.timeframe, where.data_path)
    with _progress("walk-forward", not json and err_console.is_terminal) as update:
        job = walkforward.__wrapped__(
            data,
            strategy,
            grid=grid or [],
            train=train,
            folds=folds,
            anchored=anchored,
            objective=objective,
            params=param,
            start=start,
            end=end,
            dataset=dataset,
            cash=cash,
            **options,
            no_check=no_check,
            address=address,
            workers=workers,
            log=where.log_path,
            data_path=where.data_path,
            charts=Path.cwd() / "charts",
            progress=update,
        )
    if json:
        print_json(job.summary)
        return
    result, chart = job.raw, job.summary["chart"]
    base_symbols = _named_symbols(symbols, universe)
    table = Table(
        title=f"walk-forward of {strategy} on {' '.join(base_symbols)} "
        f"({'anchored' if anchored else 'rolling'}, {objective})"
    )
    for column in ("fold", "train", "test", "params", "train ret %", "test ret %", "efficiency", "flag"):
        table.add_column(column, justify="left" if column in ("train", "test", "params", "flag") else "right")
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
        str,
        typer.Option(
            "--method",
            help="bootstrap (resample trades: could the return be luck?) or shuffle (reorder them: "
            "drawdown and streak risk; every path ends at the run's return).",
        ),
    ] = "bootstrap",
    ruin: Annotated[
        float, typer.Option("--ruin", callback=opt.finite, help="Drawdown (%) that counts as ruin.")
    ] = 50.0,
    address: opt.Address = None,
    workers: Workers = None,
    json: opt.Json = False,
) -> None:
    """Shuffle or resample a run's trades: return and drawdown distributions, ruin odds, a fan chart."""
    from tape.jobs import montecarlo

    job = montecarlo.__wrapped__(
        run_id,
        n=n,
        seed=seed,
        method=method,
        ruin=ruin,
        address=address,
        workers=workers,
        log=settings(ctx).log_path,
        charts=Path.cwd() / "charts",
    )
    if json:
        print_json(job.summary)
        return
    result, chart, reading = job.raw, job.summary["chart"], job.summary["verdict"]
    report_run_id = job.summary["run_id"]
    table = Table(
        title=f"Monte Carlo of {report_run_id}: {result.trades} trades, {n:,} {method} paths, seed {seed}"
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
    loss = f"; of a loss: {result.prob_loss:.2%}" if method == "bootstrap" else ""
    console.print(f"probability of ruin ({ruin:g} % drawdown): {result.prob_ruin:.2%}{loss}")
    console.print(f"verdict: {reading}")
    console.print(f"what it says: {job.summary['reads']}")
    console.print(f"fan chart: {chart}")


@opt.run_options()
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
    no_check: opt.NoCheck = False,
    param: opt.Params = None,
    periods: Annotated[int, typer.Option("--periods", min=1, help="Equal slices of the range to test.")] = 4,
    start: opt.Start = None,
    end: opt.End = None,
    dataset: opt.Dataset = "",
    cash: opt.Cash = 100_000.0,
    address: opt.Address = None,
    workers: Workers = None,
    json: opt.Json = False,
    *,
    options: opt.RunOptions,
) -> None:
    """Which symbols a strategy works on: each symbol alone over the whole range and several periods."""
    from tape.jobs import validate

    where = settings(ctx)
    with _progress("validate", not json and err_console.is_terminal) as update:
        job = validate.__wrapped__(
            list(symbols) if symbols else None,
            strategy,
            universe=universe,
            params=param,
            periods=periods,
            start=start,
            end=end,
            dataset=dataset,
            cash=cash,
            **options,
            no_check=no_check,
            address=address,
            workers=workers,
            log=where.log_path,
            data_path=where.data_path,
            progress=update,
        )
    if json:
        print_json(job.summary)
        return
    result = job.raw
    table = Table(title=f"{strategy} {result.params} on {len(result.symbols)} symbols, {periods} periods")
    columns = (
        "symbol",
        "return %",
        "buy & hold %",
        "sharpe",
        "trades",
        "max dd %",
        "profitable periods",
        "trade it?",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("symbol", "trade it?") else "right")
    for v in result.symbols:
        table.add_row(
            v.symbol,
            _num(v.full.get("return_pct")),
            _num(v.full.get("buy_hold_return_pct")),
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


def _named_symbols(symbols: list[str] | None, universe: str | None) -> list[str]:
    """What a job's title names: the universe, or the symbols given (once each, upper-cased)."""
    return [universe] if universe else [s.strip().upper() for s in dict.fromkeys(symbols or []) if s.strip()]
