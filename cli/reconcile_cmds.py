"""`tape reconcile`: why a paper or live session's P&L differs from the model's, cause by cause."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from tape.cli import options as opt
from tape.cli.common import console, print_json, settings


def reconcile_cmd(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(help="The paper or live session (id or unique prefix).")],
    json: opt.Json = False,
) -> None:
    """Account for every cent between a session's P&L and the model's re-run of it, by cause."""
    from tape.store.reconcile import attribution_json, reconcile

    attribution, outcome = reconcile(settings(ctx).log_path, run)
    out = attribution_json(attribution, outcome)
    if json:
        print_json(out)
        return
    render_reconcile(out)


def render_reconcile(out: dict[str, Any]) -> None:
    """The gap between the session and the model, one line a cause, summing to the gap."""
    console.print(
        f"session {out['run_id']}: live {out['live_pnl']:+,.2f}, model {out['model_pnl']:+,.2f} "
        f"(run {out['model_run_id']}), gap {out['gap']:+,.2f}"
    )
    table = Table(box=None)
    table.add_column("cause")
    table.add_column("live - model", justify="right")
    for cause, amount in out["causes"].items():
        table.add_row(cause.replace("_", " "), f"{amount:+,.2f}")
    table.add_row("[bold]total = gap[/bold]", f"[bold]{out['gap']:+,.2f}[/bold]")
    console.print(table)
