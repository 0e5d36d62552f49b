"""`tape bench ...`: the speed figures quoted in README, measured on this machine."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from tape.cli.common import console, print_json

bench_app = typer.Typer(
    help="Measure tape's speed on this machine (figures for README).", no_args_is_help=True
)


@bench_app.command("log")
def bench_log_cmd(
    events: Annotated[
        int, typer.Option("--events", min=10_000, help="Synthetic events to append and replay.")
    ] = 1_000_000,
    json: Annotated[bool, typer.Option("--json", help="Print the figures as one JSON object.")] = False,
) -> None:
    """Batched appends/s, durable (synchronous=FULL, one commit each) appends/s and replay events/s."""
    from tape.store.bench import bench_log

    with (
        console.status("appending and replaying synthetic events...", spinner="dots") if not json else _null()
    ):
        figures = bench_log(n=events)
    if json:
        print_json(figures)
        return
    table = Table(title=f"event log, {figures['events']:,} events (SQLite {figures['sqlite']})", box=None)
    table.add_column("measure")
    table.add_column("per second", justify="right")
    table.add_row(
        f"batched append ({figures['batch_size']:,} a transaction)", f"{figures['batched_append_per_s']:,}"
    )
    table.add_row(
        "durable append (synchronous=FULL, one commit each)", f"{figures['durable_append_per_s']:,}"
    )
    table.add_row("replay (read + decode + fold)", f"{figures['replay_per_s']:,}")
    table.add_row("SQL views catch-up (after appends)", f"{figures['views_sync_per_s']:,}")
    console.print(table)


@bench_app.command("backtest")
def bench_backtest_cmd(
    bars: Annotated[int, typer.Option("--bars", min=1_000, help="Synthetic 1-minute bars.")] = 1_000_000,
    strategy: Annotated[str, typer.Option("--strategy", "-s", help="Strategy to run.")] = "sma_cross",
    compare: Annotated[
        bool,
        typer.Option(
            "--compare",
            help="Time whole `tape backtest` processes (SMA 5/20, 10 shares, no costs or stops) against "
            "the raw limits and backtesting.py (when installed).",
        ),
    ] = False,
    repeat: Annotated[int, typer.Option("--repeat", min=1, help="--compare: runs of each; min counts.")] = 3,
    json: Annotated[bool, typer.Option("--json", help="Print the figures as one JSON object.")] = False,
) -> None:
    """Bars/s of a full backtest (signals, risk, costs, stops) with every decision appended to the log."""
    if compare:
        from tape.store.bench_compare import compare_backtest

        with console.status("timing whole processes...", spinner="dots") if not json else _null():
            figures = compare_backtest(bars=bars, repeat=repeat)
        _print_comparison(figures, "backtesting_py", "backtesting.py", json)
        return
    from tape.store.bench_backtest import bench_backtest

    with console.status("backtesting synthetic minute bars...", spinner="dots") if not json else _null():
        figures = bench_backtest(bars=bars, strategy=strategy)
    if json:
        print_json(figures)
        return
    console.print(
        f"{figures['strategy']}: {figures['bars']:,} bars, {figures['trades']:,} trades, "
        f"{figures['events']:,} events logged in {figures['seconds']} s"
    )
    console.print(f"[bold]{figures['bars_per_s']:,} bars/s[/bold] ({figures['events_per_s']:,} events/s)")


def _print_comparison(figures: dict[str, Any], peer: str, peer_name: str, json: bool) -> None:
    """One table of a --compare run: tape, the peer (if installed) and the raw limits, as ratios."""
    if json:
        print_json(figures)
        return
    table = Table(
        title=f"whole process, fastest of {figures['repeat']} (load average {figures['load_average']})",
        box=None,
    )
    table.add_column("measure")
    table.add_column("seconds", justify="right")
    table.add_column("CPU s", justify="right")
    table.add_column("peak RSS", justify="right")
    table.add_column("tape is", justify="right")
    table.add_row("tape", f"{figures['tape_s']}", f"{figures['tape_cpu_s']}", f"{figures['tape_mb']} MB", "")
    if f"{peer}_s" in figures:
        table.add_row(
            peer_name,
            f"{figures[f'{peer}_s']}",
            f"{figures[f'{peer}_cpu_s']}",
            f"{figures[f'{peer}_mb']} MB",
            f"{figures[f'speedup_vs_{peer}']}x faster",
        )
    else:
        table.add_row(peer_name, "not installed", "", "", "(pip install 'tape[bench]')")
    for key, label in _RAW_LIMITS:
        if key in figures:
            ratio = figures["tape_over_" + key.rsplit("_", 1)[0]]
            table.add_row(label, f"{figures[key]}", "", "", f"{ratio}x it")
    if "single_symbol_s" in figures:
        table.add_row(
            "tape, the grid on one symbol",
            f"{figures['single_symbol_s']}",
            f"{figures['single_symbol_cpu_s']}",
            f"{figures['single_symbol_mb']} MB",
            "",
        )
    console.print(table)


# (figure, label) of the raw limits a --compare table shows; "tape is Nx it" is tape's seconds / its.
_RAW_LIMITS = (
    ("sqlite_read_s", "raw: read the stored bars out of SQLite"),
    ("numpy_pass_s", "raw: bare numpy pass (SMAs, crossings, P&L)"),
    ("numpy_grid_pass_s", "raw: bare numpy pass (every pair's crossings)"),
)


@bench_app.command("sweep")
def bench_sweep_cmd(
    pairs: Annotated[int, typer.Option("--pairs", min=2, help="SMA parameter pairs.")] = 1000,
    symbols: Annotated[
        int, typer.Option("--symbols", min=1, help="Symbols in each portfolio backtest.")
    ] = 20,
    years: Annotated[int, typer.Option("--years", min=1, help="Years of daily bars.")] = 10,
    address: Annotated[
        str | None, typer.Option("--address", help="Ray cluster address; local Ray when unset.")
    ] = None,
    compare: Annotated[
        bool,
        typer.Option(
            "--compare",
            help="Time whole `tape optimize` processes (10 x 10 SMA grid on sp500_20, 20 symbols, and on "
            "one) against a bare numpy pass and vectorbt (when installed).",
        ),
    ] = False,
    repeat: Annotated[int, typer.Option("--repeat", min=1, help="--compare: runs of each; min counts.")] = 3,
    json: Annotated[bool, typer.Option("--json", help="Print the figures as one JSON object.")] = False,
) -> None:
    """Backtests/s of a parameter sweep on Ray, and the speed-up from one worker to all."""
    if compare:
        from tape.store.bench_compare import compare_sweep

        with console.status("timing whole processes...", spinner="dots") if not json else _null():
            figures = compare_sweep(repeat=repeat)
        _print_comparison(figures, "vectorbt", "vectorbt", json)
        return
    from tape.actors.bench_sweep import bench_sweep

    with (
        console.status("sweeping SMA pairs on Ray (one worker, then all)...", spinner="dots")
        if not json
        else _null()
    ):
        figures = bench_sweep(pairs=pairs, symbols=symbols, years=years, address=address)
    if json:
        print_json(figures)
        return
    console.print(
        f"{figures['backtests']:,} backtests of {figures['symbols']} symbols, "
        f"{figures['bars_per_backtest']:,} daily bars each: {figures['one_worker_s']} s on one worker, "
        f"{figures['all_workers_s']} s on {figures['workers']}"
    )
    console.print(
        f"[bold]{figures['backtests_per_s']} backtests/s[/bold]; speed-up {figures['speedup']}x, "
        f"scaling efficiency {figures['scaling_efficiency']:.0%}"
    )


@bench_app.command("portfolio")
def bench_portfolio_cmd(
    repeat: Annotated[int, typer.Option("--repeat", min=1, help="Runs of each; the fastest counts.")] = 3,
    json: Annotated[bool, typer.Option("--json", help="Print the figures as one JSON object.")] = False,
) -> None:
    """Seconds of the sp500_20 momentum backtest and a 50-combo optimize, beside pandas.

    Both are whole processes; pandas computes the same weights vectorised, for comparison."""
    from tape.store.bench_portfolio import bench_portfolio

    with console.status("timing momentum on sp500_20...", spinner="dots") if not json else _null():
        figures = bench_portfolio(repeat=repeat)
    if json:
        print_json(figures)
        return
    table = Table(
        title=f"momentum, sp500_20: {figures['rows']:,} days x {figures['symbols']} symbols "
        f"(fastest of {figures['repeat']}, load average {figures['load_average']})",
        box=None,
    )
    table.add_column("what")
    table.add_column("wall s", justify="right")
    table.add_column("CPU s", justify="right")
    f = figures
    table.add_row(
        "tape backtest (whole process, logged)",
        f"{f['backtest_process_s']}",
        f"{f['backtest_process_cpu_s']}",
    )
    table.add_row(
        "tape optimize, 50 combos (whole process)",
        f"{f['optimize_50_process_s']}",
        f"{f['optimize_50_process_cpu_s']}",
    )
    table.add_row("pandas: read the CSV + one set of weights", f"{f['pandas_weights_s']}", "")
    table.add_row("pandas: read the CSV + 50 sets of weights", f"{f['pandas_weights_50_s']}", "")
    table.add_row("tape: one set of weights (in process)", f"{f['tape_weights_s']}", "")
    console.print(table)
    console.print(f"tape's weights equal the pandas ones: {figures['weights_equal_pandas']}")


@bench_app.command("startup")
def bench_startup_cmd(
    repeat: Annotated[int, typer.Option("--repeat", min=1, help="Runs of each; the fastest counts.")] = 3,
    json: Annotated[bool, typer.Option("--json", help="Print the figures as one JSON object.")] = False,
) -> None:
    """Whole-process seconds of `tape --help` and `tape verify` (demo log) against bare `python -c pass`."""
    from tape.store.bench_startup import bench_startup

    with console.status("starting tape again and again...", spinner="dots") if not json else _null():
        figures = bench_startup(repeat=repeat)
    if json:
        print_json(figures)
        return
    table = Table(
        title=f"start-up, fastest of {figures['repeat']} (load average {figures['load_average']})", box=None
    )
    table.add_column("command")
    table.add_column("seconds", justify="right")
    table.add_column("x python -c pass", justify="right")
    table.add_row("python -c pass", f"{figures['python_s']}", "1.0")
    table.add_row("tape --help", f"{figures['help_s']}", f"{figures['help_over_python']}")
    table.add_row(
        "tape log --help (whole CLI loaded)",
        f"{figures['tree_help_s']}",
        f"{figures['tree_help_over_python']}",
    )
    table.add_row("tape verify (demo log)", f"{figures['verify_s']}", f"{figures['verify_over_python']}")
    console.print(table)


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
