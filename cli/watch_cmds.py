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
    """Positions, P&L per symbol, equity sparkline, recent decisions, alerts and actor health, live.

    Stops by itself once the run has ended (a finished run shows its final screen and exits). When the
    output is not a terminal (a pipe, a file), each change is printed as a new screen instead."""
    follower = RunFollower(settings(ctx).log_path, run)
    follower.poll()
    status = run_status(follower.events)
    if once or _ended(status):
        console.print(status_screen(status))
        if not once:
            console.print(f"run {status.get('run_id', '')} has ended ({status['state']})")
        return
    if not console.is_terminal:
        console.print(status_screen(status))
        while not _ended(status):
            time.sleep(interval)
            if follower.poll():
                status = run_status(follower.events)
                console.print(status_screen(status))
        console.print(f"run {status.get('run_id', '')} has ended ({status['state']})")
        return
    with Live(status_screen(status), console=console, auto_refresh=False) as live:
        while not _ended(status):
            time.sleep(interval)
            if follower.poll():
                status = run_status(follower.events)
                live.update(status_screen(status), refresh=True)
            else:
                live.refresh()
    console.print(f"run {status.get('run_id', '')} has ended ({status['state']})")


def _ended(status: dict) -> bool:
    """A run whose end is in the log: nothing more will come."""
    return status["state"] not in ("running", "unknown")
