"""`tape check`: prove a strategy honest on the bundled data, one pass/fail line per check."""

from __future__ import annotations

from typing import Annotated

import typer

from tape.cli import options as opt
from tape.cli.common import console, print_json


def check_cmd(
    strategy: Annotated[
        str, typer.Argument(help="A strategy: a name, path/to/file.py[:Class] or package.module:Class.")
    ],
    param: opt.Params = None,
    symbol: Annotated[
        list[str] | None,
        typer.Option("--symbol", help="Check on this bundled symbol only (repeatable; default: all)."),
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """Prove a strategy honest on the bundled data: no look-ahead, equal forms, determinism.

    Also: no signal in the warm-up, and the output contract. Exit 1 if any check fails, naming its
    first bad bar."""
    from tape.events.strategies import parse_param_args
    from tape.store.strategy_check import check_strategy

    spec, params = opt.resolve_strategy(strategy, parse_param_args(param or []))
    symbols = [s.strip().upper() for s in symbol or [] if s.strip()]
    results = check_strategy(spec, params, symbols or None)
    if json:
        print_json([r._asdict() for r in results])
    else:
        for r in results:
            mark = "[green]pass[/green]" if r.passed else "[red]FAIL[/red]"
            console.print(f"{mark}  {r.name}: {r.detail}", soft_wrap=True, highlight=False)
    if not all(r.passed for r in results):
        raise typer.Exit(1)
