"""`tape whatif`: a logged run re-run with other options or another strategy, and what changed."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from tape.cli import options as opt
from tape.cli.common import console, print_json, settings

Sets = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="A run option changed, KEY=VALUE with the option's name (stop_loss=3, slippage_bps=10, ...; "
        "repeatable).",
    ),
]
WhatIfStrategy = Annotated[
    str | None,
    typer.Option(
        "--strategy", "-s", help="Another strategy: a name, path/to/file.py[:Class] or package.module:Class."
    ),
]


def whatif_cmd(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(help="The run to re-run (id or unique prefix; see `tape runs`).")],
    set_: Sets = None,
    strategy: WhatIfStrategy = None,
    param: opt.Params = None,
    json: opt.Json = False,
) -> None:
    """Re-run RUN on its recorded inputs with changed options or strategy, as a linked, logged run.

    Prints what changed: trades added, removed or altered; the P&L, return and drawdown deltas; and the
    first decision that diverged, with both runs' reasons."""
    from tape.store.whatif import outcome_json
    from tape.whatif import whatif

    where = settings(ctx)
    outcome = whatif.__wrapped__(  # the API's own function: messages keep the --option names
        run, set=set_, strategy=strategy, params=param, log=where.log_path, data_path=where.data_path
    )
    out = outcome_json(outcome)
    if json:
        print_json(out)
        return
    render_whatif(out)


def render_whatif(out: dict[str, Any]) -> None:
    """The what-if in the terminal: the link, the deltas, the changed trades, the divergence."""
    changes = ", ".join(f"{k}={v}" for k, v in out["changes"].items()) or "no changes"
    again = " (already in the log)" if out["duplicate"] else ""
    console.print(f"what-if {out['run_id']} of {out['derived_from']}: {changes}{again}")
    table = Table(box=None)
    for column in ("", "original", "what-if", "delta"):
        table.add_column(column, justify="right")
    for key, delta in out["deltas"].items():
        table.add_row(key, _num(out["original"][key]), _num(out["derived"][key]), _num(delta, sign=True))
    console.print(table)
    kinds = [c["change"] for c in out["trade_changes"]]
    by_kind = {k: kinds.count(k) for k in ("added", "removed", "altered")}
    console.print(
        f"trades: {out['trades']['original']} -> {out['trades']['derived']} "
        f"({by_kind['added']} added, {by_kind['removed']} removed, {by_kind['altered']} altered)"
    )
    for change in out["trade_changes"][:10]:
        console.print(f"  {change['change']:<8} {change['symbol']} entered {change['entry']}{_pnl(change)}")
    divergence = out["first_divergence"]
    if divergence is None:
        console.print("[green]identical decisions[/green]")
        return
    at = (divergence["original"] or divergence["derived"])["ts"]
    console.print(f"first divergence: decision #{divergence['index'] + 1} (ts {at})")
    console.print(f"  original: {divergence['original_reason']}")
    console.print(f"  what-if:  {divergence['derived_reason']}")


def _num(value: Any, *, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+,.2f}" if sign else f"{value:,.2f}"


def _pnl(change: dict[str, Any]) -> str:
    before, after = change["before"], change["after"]
    parts = []
    if before is not None:
        parts.append(f"was {before['pnl']:+,.2f} ({before['exit_reason']})")
    if after is not None:
        parts.append(f"now {after['pnl']:+,.2f} ({after['exit_reason']})")
    return ": " + ", ".join(parts)
