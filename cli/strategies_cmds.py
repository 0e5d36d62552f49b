"""`tape strategies`: what can be backtested, with every parameter's type, default and bounds."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from tape.cli.common import console, print_json


def strategies_cmd(
    json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """Strategies by name with their origin (built-in or an installed package), typed parameters.

    Any path/to/file.py[:Class] or package.module:Class works as a strategy as well."""
    from tape.events.strategies import param_specs, strategy_class  # numpy: only when listing
    from tape.store.strategy_loader import user_strategies

    rows = []
    for code in user_strategies():
        cls = strategy_class(code.spec) if code.class_name else None
        rows.append(
            {
                "name": code.spec.partition("@")[0],
                "origin": code.kind,
                "location": code.location,
                "description": cls.summary if cls else code.location,
                "parameters": [spec._asdict() for spec in param_specs(cls)] if cls else [],
            }
        )
    if json:
        print_json(rows)
        return
    table = Table(box=None, pad_edge=False)
    for column in ("strategy", "origin", "parameters (default, range)", "what it does"):
        table.add_column(column)
    for row in rows:
        params = ", ".join(
            f"{p['name']}={p['default']} [{_bound(p['minimum'])}..{_bound(p['maximum'])}]"
            for p in row["parameters"]
        )
        table.add_row(row["name"], row["origin"], params, row["description"])
    console.print(table)
    console.print("use: tape backtest AAPL --strategy NAME --param NAME=VALUE")
    console.print(
        "your own: --strategy path/to/file.py[:Class] or package.module:Class (tape new strategy NAME)"
    )


def _bound(value: float | None) -> str:
    return "" if value is None else f"{value:g}"
