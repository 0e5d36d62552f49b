"""`tape trade` (a session on Ray actors) and `tape compare` (two runs' decisions side by side)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tape.cli import options as opt
from tape.cli.common import console, err_console, fmt_ts, print_json, settings
from tape.cli.live_trade import live_timeframe
from tape.cli.monitor_cmds import (
    AlertDailyLoss,
    AlertDrawdown,
    DegradationQuantile,
    DegradationWindow,
    StallTicks,
    monitor_config,
    prepare_monitoring,
    report_notifications,
)
from tape.cli.report_view import render_report
from tape.events.errors import ConfigError


@opt.run_options(live=True)
def trade_cmd(
    ctx: typer.Context,
    symbols: opt.Symbols,
    strategy: opt.Strategy = "sma_cross",
    no_check: opt.NoCheck = False,
    param: opt.Params = None,
    broker: Annotated[
        str, typer.Option("--broker", help="sim (the backtest's fill and cost model) or alpaca.")
    ] = "sim",
    feed: Annotated[
        str,
        typer.Option(
            "--feed",
            help="replay (stored bars), alpaca (live: REST bars each cycle) or alpaca-stream (live: "
            "minute-bar WebSocket, REST back-fill).",
        ),
    ] = "replay",
    speed: Annotated[
        float,
        typer.Option(
            "--speed",
            min=0.0,
            callback=opt.finite,
            help="Replay speed vs real time; 0 = as fast as possible.",
        ),
    ] = 0.0,
    interval: Annotated[
        str, typer.Option("--interval", help="Live: run a cycle every 30s, 5m, 1h ... inside sessions.")
    ] = "5m",
    timeframe: Annotated[
        str, typer.Option("--timeframe", help="Bar size (live default: from --interval; replay: 1Day).")
    ] = "",
    days_back: Annotated[
        int, typer.Option("--days-back", min=1, help="Live: days of history to warm the strategies up.")
    ] = 5,
    cycles: Annotated[
        int, typer.Option("--cycles", min=0, help="Live: stop after N cycles (0 = Ctrl-C).")
    ] = 0,
    start: opt.Start = None,
    end: opt.End = None,
    dataset: opt.Dataset = "",
    cash: opt.Cash = 100_000.0,
    alert_drawdown: AlertDrawdown = 10.0,
    alert_daily_loss: AlertDailyLoss = None,
    degradation_window: DegradationWindow = 20,
    degradation_quantile: DegradationQuantile = 5.0,
    stall_ticks: StallTicks = 3,
    address: opt.Address = None,
    trade_updates: opt.TradeUpdates = True,
    json: opt.Json = False,
    *,
    options: opt.RunOptions,
) -> None:
    """Trade in the foreground: replayed bars on a simulated broker, or live on Alpaca (paper by default).

    A replay session runs until its data ends; a live one until Ctrl-C or --cycles. Then the summary."""
    thresholds = monitor_config(
        alert_drawdown,
        alert_daily_loss,
        options["max_daily_loss"],
        degradation_window,
        degradation_quantile,
        stall_ticks,
    )
    live = _is_live(broker, feed)
    from tape.api import portfolio_args

    config = opt.build_config(
        symbols,
        strategy,
        portfolio_args(strategy, param, options.portfolio_params()),
        start,
        end,
        cash,
        dataset=dataset,
        timeframe=(timeframe or live_timeframe(interval)) if live else (timeframe or "1Day"),
        cost=options.cost(),
        risk=options.risk(),
        no_check=no_check,
    )
    if not live:  # a live session asks Alpaca which stocks are easy to borrow (live_session/borrow.py)
        from tape.store.shortable import with_stored_shortable

        config = with_stored_shortable(config, settings(ctx).data_path)
    from tape.events.strategies import make_strategy

    if make_strategy(config.strategy, config.params).output == "weights" and live:
        raise ConfigError("a portfolio strategy trades with --broker sim --feed replay in this version")
    monitor, notifier = prepare_monitoring(settings(ctx).log_path, config, thresholds)
    if live:
        from tape.cli.live_trade import trade_live

        try:
            trade_live(
                ctx,
                config,
                interval=interval,
                days_back=days_back,
                cycles=cycles,
                address=address,
                json=json,
                feed=feed,
                trade_updates=trade_updates,
                monitor=monitor,
                on_run=notifier.follow if notifier else None,
            )
        finally:
            report_notifications(notifier)
        return
    trade_replay(ctx, config, speed=speed, address=address, monitor=monitor, notifier=notifier, json=json)


def trade_replay(
    ctx: typer.Context,
    config: Any,
    *,
    speed: float,
    address: str | None,
    monitor: Any,
    notifier: Any,
    json: bool,
) -> None:
    """``tape trade --broker sim --feed replay``: play stored bars through the session's actors (or
    resume a stopped session), then print its report and write its trade logs."""
    from tape.actors.engine import SessionStopped, run_replay_session
    from tape.events.strategies import make_strategy
    from tape.store.backtests import load_config_bars, replay_report
    from tape.store.log import EventLog
    from tape.store.trade_logs import write_trade_logs

    portfolio = make_strategy(config.strategy, config.params).output == "weights"
    where = settings(ctx)
    series = load_config_bars(config, where.data_path)
    try:
        if portfolio:
            from tape.actors.portfolio_session import run_portfolio_session

            outcome = run_portfolio_session(config, series, log_path=where.log_path, address=address)
        else:
            outcome = run_replay_session(
                config,
                series,
                log_path=where.log_path,
                speed=speed,
                address=address,
                monitor=monitor,
                on_run=notifier.follow if notifier else None,
            )
    except SessionStopped as stopped:
        err_console.print(f"{stopped}; resume with: {resume_command()}")
        raise typer.Exit(stopped.exit_code) from None
    finally:
        report_notifications(notifier)
    run_id = outcome.run_id
    if outcome.outcome == "already complete":
        err_console.print(
            f"an identical session is already in the log, complete (run {run_id}): not run again"
        )
    elif outcome.outcome == "resumed":
        err_console.print(f"resumed session {run_id} after {outcome.resumed_at} bars already in the log")
    with EventLog.open(where.log_path, readonly=True) as log:
        report = replay_report(log, run_id)
    # The TradeLogger files, as a live session writes them: projections of the log (`report --rebuild`).
    written = write_trade_logs(report, Path.cwd())
    if json:
        from tape.events.report import report_json

        print_json(report_json(report))
        return
    render_report(report)
    console.print(f"session {run_id} on Ray actors (broker=sim, feed=replay) logged to {where.log_path}")
    if written:
        console.print(f"trade logs: {len(written)} files under {Path.cwd() / 'logs'}")


def _is_live(broker: str, feed: str) -> bool:
    """Whether ``--broker``/``--feed`` name a live Alpaca session (else a replay); a mix is refused."""
    if broker not in ("sim", "alpaca") or feed not in ("replay", "alpaca", "alpaca-stream"):
        raise ConfigError(
            "--broker must be sim or alpaca and --feed replay, alpaca or alpaca-stream "
            f"(got {broker}, {feed})"
        )
    if (broker == "alpaca") != feed.startswith("alpaca"):
        raise ConfigError("trade with --broker alpaca --feed alpaca (live) or --broker sim --feed replay")
    return broker == "alpaca"


def resume_command() -> str:
    """The command line that started this process: repeating it resumes an incomplete run."""
    return shlex.join(["tape", *sys.argv[1:]])


def compare_cmd(
    ctx: typer.Context,
    run_a: Annotated[str, typer.Argument(help="First run (e.g. the paper or replay session).")],
    run_b: Annotated[str, typer.Argument(help="Second run (e.g. the backtest of the same bars).")],
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Differences to show.")] = 20,
    json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Decisions, fills and P&L of two runs side by side, with each difference explained."""
    from tape.store.compare import compare_runs
    from tape.store.log import EventLog

    with EventLog.open(settings(ctx).log_path, readonly=True) as log:
        result = compare_runs(log, run_a, run_b)
    if json:
        print_json(
            {
                "run_a": result.run_a,
                "run_b": result.run_b,
                "decisions_a": result.decisions_a,
                "decisions_b": result.decisions_b,
                "identical": not result.differences,
                "change": result.change,
                "differences": [_diff_json(d) for d in result.differences],
            }
        )
        return
    console.print(
        f"{result.run_a}: {result.decisions_a:,} decisions · "
        f"{result.run_b}: {result.decisions_b:,} decisions · {len(result.differences)} differences"
    )
    if result.change:
        console.print(f"every difference below comes from the what-if's change: {result.change}")
    if not result.differences:
        console.print("[green]identical decisions[/green]")
        return
    table = Table(box=None)
    labelled = ("change",) if result.change else ()
    for column in ("cause", "kind", "time", "symbol", result.run_a, result.run_b, *labelled):
        table.add_column(column)
    for d in result.differences[:limit]:
        ref = d.a or d.b
        assert ref is not None
        label = (d.change.split(" (")[0],) if labelled else ()
        table.add_row(d.cause, ref.kind, fmt_ts(ref.ts), ref.symbol, _side(d.a), _side(d.b), *label)
    console.print(table)
    err_console.print(
        "causes: price = same decision, other price (slippage); timing = same decision, other time; "
        "only_a/only_b = one run decided it (a rejection or a missed signal)"
    )


def _side(d: Any) -> str:
    return "-" if d is None else f"{' '.join(map(str, d.what))} @ {d.price if d.price is not None else ''}"


def _diff_json(d: Any) -> dict[str, Any]:
    def one(x: Any) -> Any:
        return (
            None
            if x is None
            else {"kind": x.kind, "ts": x.ts, "symbol": x.symbol, "what": list(x.what), "price": x.price}
        )

    return {"cause": d.cause, "a": one(d.a), "b": one(d.b), "change": d.change}
