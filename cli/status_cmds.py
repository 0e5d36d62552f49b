"""`tape status`: where a trading run stands (positions, P&L per symbol, last decisions, alerts, health)."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import console, print_json, settings
from cli.status_view import status_screen
from events.status import run_status
from store.run_follow import RunFollower


def status_cmd(
    ctx: typer.Context,
    run: Annotated[
        str | None,
        typer.Option("--run", help="Run id (or a unique prefix); default: the newest trading session."),
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print the status as one JSON object.")] = False,
) -> None:
    """The newest (or given) trading session, folded from the log: the same figures `tape watch` shows."""
    follower = RunFollower(settings(ctx).log_path, run)
    follower.poll()
    status = run_status(follower.events)
    if json:
        print_json(status)
    else:
        console.print(status_screen(status))
