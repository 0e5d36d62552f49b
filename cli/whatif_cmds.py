"""`tape whatif`: a logged run re-run with other options or another strategy, and what changed."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from tape.cli import options as opt
from tape.cli.common import console, err_console, print_json, settings
from tape.events.errors import ConfigError

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


Grid = Annotated[
    list[str] | None,
    typer.Option(
        "--grid",
        help="Run every value as a variant on Ray and rank them: KEY=V1,V2,... (repeatable: every "
        "combination).",
    ),
]
Objective = Annotated[
    str,
    typer.Option("--objective", help="--grid ranks by: sharpe, sortino, return, pnl, drawdown, ..."),
]


def whatif_cmd(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(help="The run to re-run (id or unique prefix; see `tape runs`).")],
    set_: Sets = None,
    strategy: WhatIfStrategy = None,
    param: opt.Params = None,
    grid: Grid = None,
    objective: Objective = "sharpe",
    address: opt.Address = None,
    json: opt.Json = False,
) -> None:
    """Re-run RUN on its recorded inputs with changed options or strategy, as a linked, logged run.

    Prints what changed: trades added, removed or altered; the P&L, return and drawdown deltas; and the
    first decision that diverged, with both runs' reasons."""
    from tape.store.whatif import outcome_json
    from tape.what_if import whatif

    where = settings(ctx)
    if grid:
        if set_:
            raise ConfigError("give the changes either as --set or as --grid, not both")
        _grid(ctx, run, grid, objective, strategy, param, address, json)
        return
    outcome = whatif.__wrapped__(  # the API's own function: messages keep the --option names
        run, set=set_, strategy=strategy, params=param, log=where.log_path, data_path=where.data_path
    )
    out = outcome_json(outcome)
    if json:
        print_json(out)
        return
    render_whatif(out)


def _grid(
    ctx: typer.Context,
    run: str,
    grid: list[str],
    objective: str,
    strategy: str | None,
    param: list[str] | None,
    address: str | None,
    json: bool,
) -> None:
    from tape.events.sweep import objective_key
    from tape.what_if import OVERFIT_WARNING, whatif_grid

    where = settings(ctx)
    ranked = whatif_grid.__wrapped__(
        run,
        grid,
        objective=objective,
        strategy=strategy,
        params=param,
        log=where.log_path,
        data_path=where.data_path,
        address=address,
    )
    key = objective_key(objective)[0]
    rows = [_grid_row(n, o, key) for n, o in enumerate(ranked, start=1)]
    if json:
        origin = ranked[0].link.derived_from
        print_json({"derived_from": origin, "objective": objective, "warning": OVERFIT_WARNING, "rows": rows})
        return
    table = Table(title=f"what-if of {ranked[0].link.derived_from}: {len(rows)} variants by {objective}")
    for column in ("#", "changes", "run", objective, "P&L", "return %", "max DD %", "trades"):
        table.add_column(column, justify="left" if column in ("changes", "run") else "right")
    for r in rows:
        changes = ", ".join(f"{k}={v}" for k, v in r["changes"].items())
        table.add_row(
            str(r["rank"]),
            changes,
            r["run_id"],
            _num(r["objective"]),
            _num(r["total_pnl"]),
            _num(r["return_pct"]),
            _num(r["max_drawdown_pct"]),
            str(r["trades"]),
        )
    console.print(table)
    err_console.print(f"[yellow]warning:[/yellow] {OVERFIT_WARNING}")


def _grid_row(rank: int, outcome: Any, key: str) -> dict[str, Any]:
    metrics = outcome.derived.metrics
    return {
        "rank": rank,
        "run_id": outcome.derived.run_id,
        "changes": outcome.link.changes,
        "objective": metrics.get(key),
        "total_pnl": metrics.get("total_pnl"),
        "return_pct": metrics.get("return_pct"),
        "max_drawdown_pct": metrics.get("max_drawdown_pct"),
        "trades": len(outcome.derived.trades),
    }


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
    console.print(f"first divergence: decision #{divergence['index'] + 1} at {divergence['time']}")
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
