"""Options several commands share, declared once, and the config they build."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

# The config builder is the Python API's: a command and its API call build the same config.
from tape.arguments import build_config, parse_day, resolve_strategy
from tape.run_options import RunOption, RunOptions, chosen_options, with_options

__all__ = ["RunOptions", "build_config", "parse_day", "resolve_strategy", "run_options"]

F = TypeVar("F", bound=Callable[..., Any])


def finite(value: float | None) -> float | None:
    """Refuse inf and nan for a numeric option: no amount, price or percentage is infinite."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"must be a finite number, got {value}")
    return value


def _typer_parameter(option: RunOption) -> inspect.Parameter:
    flag = typer.Option(
        option.flag,
        help=option.help,
        rich_help_panel=option.panel,
        callback=finite if option.kind is float else None,
    )
    return inspect.Parameter(
        option.name,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        default=option.default,
        annotation=Annotated[option.annotation, flag],
    )


def run_options(*, live: bool = False) -> Callable[[F], F]:
    """A command taking the run options of ``tape.run_options`` (costs, risk, sizing, filters and, but
    for a live-capable command, ``--timeframe``): its ``options: RunOptions`` parameter becomes one
    ``--option`` each, grouped in help panels, gathered back into a RunOptions when it runs."""

    def decorate(fn: F) -> F:
        return with_options(fn, chosen_options(live=live), _typer_parameter, live=live)

    return decorate


Symbols = Annotated[list[str], typer.Argument(help="One or more symbols; several share cash and limits.")]
NoCheck = Annotated[
    bool,
    typer.Option(
        "--no-check",
        help="Skip the quick look-ahead and equality check of a non-built-in strategy (recorded on the run).",
    ),
]
Strategy = Annotated[
    str,
    typer.Option(
        "--strategy",
        "-s",
        help="A strategy: a name (see `tape strategies`), path/to/file.py[:Class] or package.module:Class.",
    ),
]
Params = Annotated[
    list[str] | None, typer.Option("--param", "-p", help="Strategy parameter NAME=VALUE (repeatable).")
]
Start = Annotated[str | None, typer.Option("--start", help="First day (YYYY-MM-DD).")]
End = Annotated[str | None, typer.Option("--end", help="Last day (YYYY-MM-DD).")]
Cash = Annotated[float, typer.Option("--cash", callback=finite, help="Starting cash ($).")]
Address = Annotated[
    str | None,
    typer.Option("--address", help="Ray cluster address (auto, ray://host:10001); local Ray if unset."),
]
Dataset = Annotated[
    str,
    typer.Option("--dataset", help="Read a bundled dataset (sample, sp500_20) instead of the data store."),
]
TradeUpdates = Annotated[
    bool,
    typer.Option(
        "--trade-updates/--no-trade-updates",
        help="Live: listen to Alpaca's trade-update stream, so a market order's fill is logged in the "
        "cycle that placed it; polling stays the source of truth, and trades on alone if the stream "
        "is off or down (fills then a cycle later).",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
