"""Monitoring in the terminal: period summaries, notification health, `tape alerts`, and the alert
threshold options `tape trade` takes."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from tape.cli.common import console, fmt_ts, print_json, settings
from tape.events.monitor import MonitorConfig

# --------------------------------------------------------------------------- `tape trade` options

AlertDrawdown = Annotated[
    float,
    typer.Option("--alert-drawdown", help="Alert when equity is this % below its peak (0 = off)."),
]
AlertDailyLoss = Annotated[
    float | None,
    typer.Option(
        "--alert-daily-loss", help="Alert at this % loss on the day (default: --max-daily-loss; 0 = off)."
    ),
]
DegradationWindow = Annotated[
    int,
    typer.Option(
        "--degradation-window",
        help="Sessions of the rolling return compared with a backtest of the strategy (0 = off).",
    ),
]
DegradationQuantile = Annotated[
    float,
    typer.Option(
        "--degradation-quantile",
        help="Alert below this % quantile of the backtest's rolling returns (0 = its worst window).",
    ),
]
StallTicks = Annotated[
    int,
    typer.Option(
        "--stall-ticks",
        help="Alert when a symbol misses this many bars in a row while others arrive (0 = off).",
    ),
]


def monitor_config(
    drawdown: float, daily_loss: float | None, max_daily_loss: float, window: int, quantile: float, stall: int
) -> MonitorConfig:
    """The thresholds as typed (validated: a bad one is a ConfigError naming its option)."""
    return MonitorConfig(
        max_drawdown_pct=drawdown,
        daily_loss_pct=max_daily_loss if daily_loss is None else daily_loss,
        degradation_window=window,
        degradation_quantile=quantile,
        stall_ticks=stall,
    )


def prepare_monitoring(log_path: Any, config: Any, thresholds: MonitorConfig) -> tuple[MonitorConfig, Any]:
    """The thresholds with the degradation floor of a backtest of the same strategy in the log (when
    there is one), and the notifier the environment configures (None without channels). A bad
    notification setting fails here, before any trading."""
    from tape.actors.notifier import start_notifier

    notifier = start_notifier(log_path)
    return with_degradation_floor(log_path, config, thresholds), notifier


def with_degradation_floor(log_path: Any, config: Any, thresholds: MonitorConfig) -> MonitorConfig:
    """The thresholds with the degradation floor of a backtest of the same strategy in the log (when
    there is one and the rule is on)."""
    import msgspec

    if thresholds.degradation_window > 0 and log_path.exists() and log_path.stat().st_size > 0:
        from tape.store.log import EventLog
        from tape.store.period_report import degradation_floor, reference_backtest

        strategy = make_strategy_name(config)
        with EventLog.open(log_path, readonly=True) as log:
            reference = reference_backtest(log, strategy[0], strategy[1], list(config.symbols))
            if reference is not None:
                floor = degradation_floor(
                    log, reference, thresholds.degradation_window, thresholds.degradation_quantile
                )
                thresholds = msgspec.structs.replace(
                    thresholds, expected_low_pct=floor, reference_run=reference
                )
    return thresholds


def make_strategy_name(config: Any) -> tuple[str, dict[str, Any]]:
    """The strategy's registered name and full parameters (defaults filled in), as RunStarted logs them."""
    from tape.events.strategies import make_strategy

    strategy = make_strategy(config.strategy, config.params)
    return strategy.name, strategy.param_dict()


def report_notifications(notifier: Any) -> None:
    """After a session: wait for pending notifications and say how delivery went (stderr)."""
    if notifier is None:
        return
    from tape.cli.common import err_console

    counts = notifier.close()
    if counts["sent"] or counts["failed"]:
        colour = "red" if counts["failed"] else "green"
        err_console.print(
            f"notifications: [{colour}]{counts['sent']} delivered, {counts['failed']} failed[/{colour}]"
            " (details: tape report --run RUN)"
        )


# --------------------------------------------------------------------------- rendering


def _money(value: Any) -> str:
    return "" if value is None else f"{value:,.2f}"


def _pct(value: Any) -> str:
    return "" if value is None else f"{value:.2f} %"


def render_period_report(summary: dict[str, Any]) -> None:
    """The period table, totals, the backtest expectation and notification health."""
    expected = summary["expected"]
    console.print(
        f"run {summary['run_id']} ({summary['mode']}, {summary['strategy']}, {' '.join(summary['symbols'])}) "
        f"by {summary['period']} period, status {summary['status']}"
    )
    table = Table(box=None, pad_edge=False)
    columns = ["period", "trades", "win rate", "gross P&L", "commission", "net P&L", "equity P&L", "return"]
    if expected:
        columns += ["backtest net", "backtest return", "in range"]
    for column in columns:
        table.add_column(column, justify="left" if column == "period" else "right")
    for r in summary["rows"]:
        cells = [
            r["period"],
            str(r["trades"]),
            _pct(r["win_rate"]),
            _money(r["gross_pnl"]),
            _money(r["commission"]),
            _money(r["net_pnl"]),
            _money(r["equity_pnl"]),
            _pct(r["return_pct"]),
        ]
        if expected:
            in_range = r.get("in_expected_range")
            cells += [
                _money(r.get("backtest_net_pnl")),
                _pct(r.get("backtest_return_pct")),
                "" if in_range is None else ("yes" if in_range else "[red]no[/red]"),
            ]
        table.add_row(*cells)
    t = summary["totals"]
    table.add_row(
        "[bold]total[/bold]",
        str(t["trades"]),
        _pct(t["win_rate"]),
        _money(t["gross_pnl"]),
        _money(t["commission"]),
        _money(t["net_pnl"]),
        _money(t["equity_pnl"]),
        _pct(t["return_pct"]),
    )
    console.print(table)
    check = "[green]reconciled[/green]" if t["reconciled"] else "[red]DOES NOT reconcile[/red]"
    console.print(
        f"periods sum to net P&L {_money(t['net_pnl'])} (run {_money(t['run_total_pnl'])}) and equity change "
        f"{_money(t['equity_pnl'])} (run {_money(t['run_equity_change'])}): {check}"
    )
    if expected:
        console.print(
            f"backtest {expected['run_id']} ({expected['periods']} periods): mean return "
            f"{_pct(expected['mean_return_pct'])}, expected range {_pct(expected['low_return_pct'])} to "
            f"{_pct(expected['high_return_pct'])} (5-95 %), win rate {_pct(expected['win_rate'])}"
        )
    elif summary["mode"] == "backtest":
        console.print("this run is a backtest: sessions of the same strategy and parameters compare with it")
    else:
        console.print("no backtest of this strategy and parameters in the log to compare with")
    if summary["notifications"]["channels"]:
        render_health(summary["notifications"])


def render_health(health: dict[str, Any]) -> None:
    """One line per notification channel; failures in red."""
    for channel, c in health["channels"].items():
        line = f"notifications {channel}: {c['sent']} sent, {c['failed_attempts']} failed attempts"
        if c["given_up"]:
            line += f", [red]{c['given_up']} undelivered[/red]"
        if c["last_error"]:
            line += f" (last error: {c['last_error']})"
        console.print(line)


# --------------------------------------------------------------------------- `tape alerts`


def alerts_cmd(
    ctx: typer.Context,
    run: Annotated[str | None, typer.Option("--run", help="Only this run (default: every run).")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Newest N alerts.")] = 50,
    json: Annotated[bool, typer.Option("--json", help="JSON Lines: one object per alert.")] = False,
) -> None:
    """Alerts raised by runs (drawdown, daily loss, degradation, stalled feed, dead actor, ...)."""
    from tape.events.render import as_dict
    from tape.store.log import EventLog
    from tape.store.runs import find_run

    with EventLog.open(settings(ctx).log_path, readonly=True) as log:
        prefix = f"run/{find_run(log, run).run_id}" if run else "run/"
        rows = list(log.read(stream_prefix=prefix, kinds=("alert",), limit=limit, descending=True))
    rows.reverse()
    if json:
        for r in rows:
            print_json({"seq": r.seq, "stream": r.stream, "event_id": r.event_id, **as_dict(r.event)})
        return
    table = Table(box=None, pad_edge=False)
    for column in ("seq", "time (UTC)", "run", "severity", "rule", "symbol", "message"):
        table.add_column(column, overflow="fold")
    for r in rows:
        e: Any = r.event
        colour = {"critical": "red", "warning": "yellow"}.get(e.severity, "dim")
        table.add_row(
            str(r.seq),
            fmt_ts(r.ts),
            r.stream.split("/")[1],
            f"[{colour}]{e.severity}[/{colour}]",
            e.rule,
            e.symbol,
            e.message,
        )
    console.print(table)
