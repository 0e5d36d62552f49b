"""The `tape` command: a thin typer app. Each command parses, calls one function, renders the result."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import apsw
import typer
from typer._click import exceptions as click_errors  # typer >= 0.20 vendors click

from tape.cli import (
    backtest_cmds,
    bench_cmds,
    check_cmds,
    dashboard_cmds,
    data_cmds,
    engine_cmds,
    log_cmds,
    monitor_cmds,
    new_cmds,
    reconcile_cmds,
    strategies_cmds,
    trade_cmds,
    validate_cmds,
    watch_cmds,
    whatif_cmds,
)
from tape.cli.common import Settings, err_console
from tape.events.errors import TapeError

app = typer.Typer(
    name="tape",
    help="Event-sourced trading engine: backtest, validate and paper-trade from one immutable log.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


@app.callback()
def root(
    ctx: typer.Context,
    log: Annotated[
        Path, typer.Option("--log", envvar="TAPE_LOG", help="The event log file.", show_default=True)
    ] = Path("tape.db"),
    data: Annotated[
        Path,
        typer.Option("--data", envvar="TAPE_DATA", help="The market-data cache (imported and fetched bars)."),
    ] = Path("tape-data.db"),
) -> None:
    """Options every command shares."""
    ctx.obj = Settings(log_path=log, data_path=data)


app.command("backtest")(backtest_cmds.backtest_cmd)
app.command("replay")(backtest_cmds.replay_cmd)
app.command("explain")(backtest_cmds.explain_cmd)
app.command("report")(backtest_cmds.report_cmd)
app.command("trade")(trade_cmds.trade_cmd)
app.command("compare")(trade_cmds.compare_cmd)
app.command("whatif")(whatif_cmds.whatif_cmd)
app.command("reconcile")(reconcile_cmds.reconcile_cmd)
app.command("watch")(watch_cmds.watch_cmd)
app.command("dashboard")(dashboard_cmds.dashboard_cmd)
app.command("up")(engine_cmds.up_cmd)
app.command("spawn")(engine_cmds.spawn_cmd)
app.command("stop")(engine_cmds.stop_cmd)
app.command("status")(engine_cmds.status_cmd)
app.command("down")(engine_cmds.down_cmd)
app.command("strategies")(strategies_cmds.strategies_cmd)
app.command("check")(check_cmds.check_cmd)
app.command("optimize")(validate_cmds.optimize_cmd)
app.command("walkforward")(validate_cmds.walkforward_cmd)
app.command("montecarlo")(validate_cmds.montecarlo_cmd)
app.command("validate")(validate_cmds.validate_cmd)
app.command("verify")(log_cmds.verify)
app.command("runs")(log_cmds.runs)
app.command("alerts")(monitor_cmds.alerts_cmd)
app.add_typer(log_cmds.log_app, name="log")
app.add_typer(data_cmds.data_app, name="data")
app.add_typer(bench_cmds.bench_app, name="bench")
app.add_typer(new_cmds.new_app, name="new")


def main() -> None:
    """Entry point: user errors become one line on stderr and a non-zero exit, never a traceback."""
    try:
        # Without standalone mode typer returns a command's `typer.Exit` code instead of exiting.
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except click_errors.NoArgsIsHelpError:
        sys.exit(0)  # `tape` or `tape log` alone printed their help
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("interrupted")
        sys.exit(130)
    except click_errors.ClickException as exc:
        # A bad option or argument: one line naming it, and where to read more.
        hint = f" (see `{exc.ctx.command_path} --help`)" if getattr(exc, "ctx", None) else ""
        err_console.print(f"[red]error:[/red] {exc.format_message()}{hint}", soft_wrap=True)
        sys.exit(exc.exit_code)
    except TapeError as exc:
        err_console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except (apsw.CorruptError, apsw.NotADBError) as exc:
        # Found while reading, past the checks at open: a damaged page is one line too, never a bug.
        err_console.print(
            f"[red]error:[/red] a database file is damaged ({exc}); run `tape verify` for details",
            soft_wrap=True,
        )
        sys.exit(1)
    except Exception as exc:  # a bug: say so plainly; the traceback is one variable away
        if os.environ.get("TAPE_DEBUG"):
            raise
        from tape.store.strategy_loader import as_user_error

        mine = as_user_error(exc)  # raised inside the user's strategy: their file and line, not ours
        if mine is not None:
            err_console.print(f"[red]error:[/red] {mine}", soft_wrap=True)
            sys.exit(mine.exit_code)
        err_console.print(
            f"[red]internal error:[/red] {type(exc).__name__}: {exc} (set TAPE_DEBUG=1 for the traceback)",
            soft_wrap=True,
        )
        sys.exit(70)


if __name__ == "__main__":
    main()
