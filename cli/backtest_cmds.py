"""`tape backtest`, `tape replay`, `tape explain`: run a backtest into the log and read it back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tape.cli import options as opt
from tape.cli.common import console, err_console, print_json, settings
from tape.cli.report_view import render_report
from tape.events.errors import ConfigError
from tape.events.render import as_dict, summarize
from tape.events.report import market_time, report_json

if TYPE_CHECKING:
    from rich.progress import TaskID

# The store (SQLite, numpy, charts) is imported inside the commands that use it: `tape --help` and
# the other commands start without it.

PROGRESS_MIN_BARS = 300_000  # shorter runs finish before a bar would be worth drawing


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A progress callback that draws a bar only for runs long enough to need one (no flicker)."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("backtest"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} bars"),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )
    task: list[TaskID] = []

    def update(done: int, total: int) -> None:
        if total < PROGRESS_MIN_BARS:
            return
        if not task:
            progress.start()
            task.append(progress.add_task("run", total=total))
        progress.update(task[0], completed=done)

    try:
        yield update
    finally:
        progress.stop()


@opt.run_options()
def backtest_cmd(
    ctx: typer.Context,
    symbols: Annotated[
        list[str] | None,
        typer.Argument(help="One or more symbols; several share cash and limits (or --universe)."),
    ] = None,
    strategy: opt.Strategy = "sma_cross",
    universe: Annotated[
        str | None,
        typer.Option(
            "--universe",
            help="Every symbol of a bundled dataset (sample, sp500_20) or stored (every stored series).",
        ),
    ] = None,
    no_check: opt.NoCheck = False,
    param: opt.Params = None,
    start: opt.Start = None,
    end: opt.End = None,
    dataset: opt.Dataset = "",
    cash: opt.Cash = 100_000.0,
    no_adjust: Annotated[
        bool, typer.Option("--no-adjust", help="Use raw prices (no split/dividend adjustment).")
    ] = False,
    json: opt.Json = False,
    log_scale: Annotated[
        bool | None,
        typer.Option(
            "--log-scale/--linear",
            help="Equity chart's money axis (default: log when the curves span more than 10x).",
        ),
    ] = None,
    no_files: Annotated[
        bool, typer.Option("--no-files", help="Skip the results JSON, trades CSV, chart and HTML report.")
    ] = False,
    *,
    options: opt.RunOptions,
) -> None:
    """Backtest a strategy on stored bars; append every decision to the log and print the summary."""
    from tape.api import backtest, keeping_events

    where = settings(ctx)
    show_progress = not json and err_console.is_terminal
    with _progress_bar(show_progress) as update, keeping_events():
        # The API's own function (unwrapped: messages keep the options' --names).
        result = backtest.__wrapped__(
            symbols or None,
            strategy,
            universe=universe,
            params=param,
            start=start,
            end=end,
            cash=cash,
            **options,
            dataset=dataset,
            adjust=not no_adjust,
            no_check=no_check,
            log=where.log_path,
            data_path=where.data_path,
            progress=update,
        )
    outcome = result.outcome
    report = outcome.report
    files = None
    if not no_files:
        from tape.store.backtest_files import write_backtest_files
        from tape.store.html_report import html_report_path, write_run_html

        day = dt.date.today().isoformat()
        page = write_run_html(
            where.log_path,
            report,
            outcome.series,
            html_report_path(Path.cwd(), report, day),
            events=outcome.events,
        )
        # The page was the events' last reader: let them go before the files and the chart are made.
        result.outcome = outcome = outcome._replace(events=())
        files = write_backtest_files(report, outcome.series, root=Path.cwd(), day=day, log_scale=log_scale)
    if json:
        print_json(result.summary)
        return
    render_report(report)
    if outcome.duplicate:
        console.print(
            f"[yellow]identical run already in the log[/yellow]: {report.run_id} (nothing appended)"
        )
    else:
        console.print(
            f"logged run [bold]{report.run_id}[/bold]: {outcome.append.count:,} events → {where.log_path}"
        )
    if files is not None:
        console.print(f"wrote {files.results}, {files.trades}, {files.chart}, {page}")
    console.print(f"audit: tape replay {report.run_id} · tape explain {report.run_id} --trade 1")


def replay_cmd(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix of 4+ characters).")],
    rerun_: Annotated[
        bool, typer.Option("--rerun", help="Feed the recorded inputs through the deciders and compare.")
    ] = False,
    json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Rebuild a run's summary from the log alone, or re-run it and prove the same decisions come out.

    With ``--rerun``, a job's summary id (``<job_id>:<n>``, from optimize, walkforward or validate) is
    re-run in full as a logged backtest whose metrics must match the summary.
    """
    from tape.store.backtests import replay_report, rerun
    from tape.store.log import EventLog

    where = settings(ctx)
    if rerun_ and ":" in run_id:
        _rerun_summary(where.log_path, where.data_path, run_id, json)
        return
    with EventLog.open(where.log_path, readonly=True) as log:
        if not rerun_:
            report = replay_report(log, run_id)
            if json:
                print_json(report_json(report))
            else:
                render_report(report)
                console.print(f"replayed from {where.log_path} alone: no market data read")
            return
        result = rerun(log, run_id, data_path=where.data_path)
    same = result.first_difference is None
    if json:
        from tape.api import rerun_json

        print_json(rerun_json(result))
    else:
        if result.code_changed:
            err_console.print(f"[yellow]note:[/yellow] {result.code_changed}", soft_wrap=True)
        for symbol in result.data_changed:
            err_console.print(f"[yellow]warning:[/yellow] {symbol}: the data differs from what the run read")
        if same:
            console.print(
                f"[green]identical[/green]: re-ran {result.run_id}, {result.compared:,} decisions match"
            )
        else:
            seq, old, new = result.first_difference  # type: ignore[misc]
            console.print(f"[red]DIFFERS[/red] at seq {seq} (after {result.compared:,} matching events)")
            console.print(f"  recorded: {_line(old)}")
            console.print(f"  re-run:   {_line(new)}")
    if not same:
        raise typer.Exit(1)


def _rerun_summary(log_path: Path, data_path: Path, summary_id: str, json: bool) -> None:
    from tape.store.backtests import rerun_summary

    result = rerun_summary(log_path, summary_id, data_path=data_path)
    if json:
        from tape.api import summary_rerun_json

        print_json(summary_rerun_json(result))
    else:
        if result.code_changed:
            err_console.print(f"[yellow]note:[/yellow] {result.code_changed}", soft_wrap=True)
        for symbol in result.data_changed:
            err_console.print(f"[yellow]warning:[/yellow] {symbol}: the data differs from what the job read")
        if result.mismatched:
            console.print(
                f"[red]DIFFERS[/red]: {len(result.mismatched)} metrics of {result.summary_id} changed"
            )
            for key, (old, new) in list(result.mismatched.items())[:10]:
                console.print(f"  {key}: summary {old} vs re-run {new}")
        else:
            console.print(
                f"[green]identical[/green]: {result.summary_id} re-ran in full as run {result.run_id}"
            )
            console.print(f"details: tape replay {result.run_id} · tape explain {result.run_id} --trade 1")
    if result.mismatched:
        raise typer.Exit(1)


def _line(event: Any) -> str:
    if event is None:
        return "(no event)"
    return f"{type(event).__name__} {summarize(event)}"


def explain_cmd(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix of 4+ characters).")],
    trade: Annotated[
        int, typer.Option("--trade", "-t", min=1, help="Trade number (1 = first closed trade).")
    ] = 1,
    json: Annotated[bool, typer.Option("--json", help="JSON Lines: one object per event.")] = False,
    rebalance: Annotated[
        int | None,
        typer.Option("--rebalance", "-r", min=1, help="A portfolio strategy's rebalance number instead."),
    ] = None,
) -> None:
    """Show the events behind one trade: signal, risk check with its numbers, orders, fills, exit.

    With --rebalance N, a portfolio strategy's N-th rebalance: each symbol's score and rank, the weight
    held and aimed at, and the order that bought, trimmed or sold it."""
    from tape.store.explain import explain_trade
    from tape.store.log import EventLog
    from tape.store.runs import find_run, strategy_origin

    where = settings(ctx)
    with EventLog.open(where.log_path, readonly=True) as log:
        started = find_run(log, run_id)
        if rebalance is not None:
            from tape.cli.rebalance_view import show_rebalance
            from tape.store.explain_rebalance import explain_rebalance

            show_rebalance(started, *explain_rebalance(log, started.run_id, rebalance), json=json)
            return
        records = explain_trade(log, started.run_id, trade)
    if json:
        for rec in records:
            print_json({"seq": rec.seq, "stream": rec.stream, **as_dict(rec.event)})
        return
    console.print(f"trade {trade} of run {started.run_id} ({started.strategy}, {' '.join(started.symbols)})")
    console.print(f"strategy: {strategy_origin(started)}", soft_wrap=True, highlight=False)
    for rec in records:
        when = market_time(rec.ts, started.timeframe)
        console.print(
            f"  [dim]{rec.seq:>8}[/dim] {when:<22} [bold]{rec.kind:<16}[/bold] {summarize(rec.event)}"
        )


def report_cmd(
    ctx: typer.Context,
    run_id: Annotated[
        str | None, typer.Argument(help="Run id (or a unique prefix of 4+ characters); default: newest.")
    ] = None,
    run: Annotated[str | None, typer.Option("--run", help="The run (same as the argument).")] = None,
    period: Annotated[
        str | None,
        typer.Option("--period", help="daily, weekly or monthly: summaries by calendar period."),
    ] = None,
    rebuild: Annotated[
        bool,
        typer.Option("--rebuild", help="Write logs/trades_*_<day>.csv and logs/daily_summary_<day>.json."),
    ] = False,
    json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    html: Annotated[
        bool,
        typer.Option(
            "--html",
            help="Write the run's interactive HTML report: results/report_<symbols>_<day>_<run>.html.",
        ),
    ] = False,
    html_file: Annotated[
        Path | None,
        typer.Option("--html-file", help="Write the HTML report to this file instead (implies --html)."),
    ] = None,
) -> None:
    """A run's summary, by day, week or month with --period, or its trade logs rebuilt with --rebuild.

    --period places each period beside a backtest of the same strategy; --rebuild writes the per-day
    trade CSVs and daily summaries from the log alone."""
    from tape.cli.monitor_cmds import render_period_report
    from tape.store.backtests import replay_report
    from tape.store.log import EventLog
    from tape.store.period_report import newest_run, period_report, run_notification_health
    from tape.store.trade_logs import write_trade_logs

    if run_id and run and run_id != run:
        raise ConfigError(f"two different runs given: {run_id} and --run {run}")
    with EventLog.open(settings(ctx).log_path, readonly=True) as log:
        chosen = run_id or run or newest_run(log)
        if period is not None:
            summary = period_report(log, chosen, period)
        else:
            report = replay_report(log, chosen)
            health = run_notification_health(log, report.run_id)
    if period is not None:
        if json:
            print_json(summary)
        else:
            render_period_report(summary)
        return
    if html or html_file is not None:
        page = _write_report_html(settings(ctx), report, html_file)
    live_vs_model = _live_vs_model(settings(ctx).log_path, report)
    if json:
        extra = {"live_vs_model": live_vs_model} if live_vs_model else {}
        print_json({**report_json(report), "notifications": health, **extra})
    else:
        render_report(report)
        if health["channels"]:
            from tape.cli.monitor_cmds import render_health

            render_health(health)
        _render_live_vs_model(live_vs_model)
    if (html or html_file is not None) and not json:
        console.print(f"wrote {page}")
    if rebuild:
        written = write_trade_logs(report, Path.cwd())
        trades = sum(1 for p in written if p.name.startswith("trades_"))
        console.print(f"rebuilt {trades} trade logs and {len(written) - trades} daily summaries under logs/")


def _live_vs_model(log_path: Path, report: Any) -> dict[str, Any] | None:
    """A paper or live session's reconcile table (as `tape reconcile` prints it); None for other runs."""
    from tape.store.reconcile import RECONCILED_MODES, reconcile_section

    if report.mode not in RECONCILED_MODES:
        return None
    return reconcile_section(log_path, report.run_id)


def _render_live_vs_model(section: dict[str, Any] | None) -> None:
    if section is None:
        return
    console.print("\n[bold]Live vs model[/bold] (tape reconcile)")
    if "unavailable" in section:
        console.print(f"  not available: {section['unavailable']}")
        return
    from tape.cli.reconcile_cmds import render_reconcile

    render_reconcile(section)


def _write_report_html(where: Any, report: Any, file: Path | None) -> Path:
    """The run's HTML page at ``file`` (or its default name under results/), from the log and the bars."""
    from tape.store.html_report import html_report_path, run_bars, write_run_html

    path = file or html_report_path(Path.cwd(), report, dt.date.today().isoformat())
    if path.is_dir():
        raise ConfigError(f"--html-file {file} is a directory; give a file name ending in .html")
    return write_run_html(where.log_path, report, run_bars(report, where.data_path), path)
