"""`tape watch`: a live terminal dashboard of a trading run, refreshed from the log about once a second.

It reads the log only (read-only, a fresh connection each refresh), so it works beside `tape trade` in
another shell, beside the engine, and on a finished or replayed run.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.live import Live

from tape.cli.common import console, settings
from tape.cli.options import finite
from tape.cli.status_view import status_screen
from tape.events.status import run_status
from tape.store.run_follow import RunFollower


def watch_cmd(
    ctx: typer.Context,
    run: Annotated[
        str | None,
        typer.Option("--run", help="Run id (or a unique prefix); default: the newest trading session."),
    ] = None,
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, callback=finite, help="Seconds between refreshes.")
    ] = 1.0,
    once: Annotated[bool, typer.Option("--once", help="Print one screen and exit.")] = False,
) -> None:
    """Positions, P&L per symbol, equity sparkline, recent decisions, alerts and actor health, live."""
    follower = RunFollower(settings(ctx).log_path, run)
    follower.poll()
    if once:
        console.print(status_screen(run_status(follower.events)))
        return
    with Live(status_screen(run_status(follower.events)), console=console, auto_refresh=False) as live:
        while True:
            time.sleep(interval)
            if follower.poll():
                live.update(status_screen(run_status(follower.events)), refresh=True)
            else:
                live.refresh()
