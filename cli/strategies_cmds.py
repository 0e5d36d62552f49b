"""`tape strategies`: what can be backtested, with every parameter's type, default and bounds."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from tape.cli.common import console, print_json
from tape.events.strategies import REGISTRY, param_specs


def strategies_cmd(
    json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """Registered strategies: names, one-line descriptions and their typed parameters."""
    rows = [
        {
            "name": name,
            "description": cls.summary,
            "parameters": [spec._asdict() for spec in param_specs(cls)],
        }
        for name, cls in sorted(REGISTRY.items())
    ]
    if json:
        print_json(rows)
        return
    table = Table(box=None, pad_edge=False)
    for column in ("strategy", "parameters (default, range)", "what it does"):
        table.add_column(column)
    for row in rows:
        params = ", ".join(
            f"{p['name']}={p['default']} [{_bound(p['minimum'])}..{_bound(p['maximum'])}]"
            for p in row["parameters"]
        )
        table.add_row(row["name"], params, row["description"])
    console.print(table)
    console.print("use: tape backtest AAPL --strategy NAME --param NAME=VALUE")


def _bound(value: float | None) -> str:
    return "" if value is None else f"{value:g}"
