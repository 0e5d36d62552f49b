"""`tape new strategy NAME`: a commented, runnable strategy file to start from."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from tape.cli.common import console
from tape.events.errors import ConfigError

new_app = typer.Typer(help="Start something of your own from a template.", no_args_is_help=True)

TEMPLATE = '''"""{title}: a Donchian channel breakout (edit freely; `tape check {file}` proves it honest)."""

import msgspec
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tape import BUY, SELL, SignalSeries, Strategy


class {cls}(Strategy):
    """Buy a close above the highest high of the previous N bars; sell one below their lowest low."""

    # Typed parameters: `--param window=30` is converted and checked against these bounds.
    class Params(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
        window: int = 20

    def warmup(self) -> int:
        # Bars needed before the first signal (tape check fails a signal earlier than this).
        return self.params.window + 1

    def signals(self, bars) -> SignalSeries:
        # The vectorised form: bars.open/high/low/close/volume/ts are numpy arrays, oldest first.
        # side[i] may use bars up to i only; tape derives the incremental (live) form from this.
        n, w = len(bars.close), self.params.window
        upper = np.full(n, np.nan)
        lower = np.full(n, np.nan)
        if n > w:
            upper[w:] = sliding_window_view(bars.high, w)[:-1].max(axis=1)
            lower[w:] = sliding_window_view(bars.low, w)[:-1].min(axis=1)
        side = np.zeros(n, dtype=np.int8)
        side[bars.close > upper] = BUY
        side[bars.close < lower] = SELL
        # The values are recorded on each Signal event (tape explain shows them).
        return SignalSeries(side, {{"upper": upper, "lower": lower}})
'''


def new_strategy_cmd(
    name: Annotated[str, typer.Argument(help="The strategy's name: NAME.py is written here.")],
) -> None:
    """Write NAME.py, a runnable strategy template, and print the next three commands."""
    stem = re.sub(r"\W+", "_", name.strip().removesuffix(".py")).strip("_").lower()
    if not stem or stem[0].isdigit():
        raise ConfigError(
            f"a strategy name is letters, digits and _, not starting with a digit; got {name!r}"
        )
    path = Path(f"{stem}.py")
    if path.exists():
        raise ConfigError(f"{path} exists; choose another name or remove it")
    cls = "".join(part.capitalize() for part in stem.split("_"))
    path.write_text(TEMPLATE.format(title=cls, cls=cls, file=path.name), encoding="utf-8")
    console.print(f"wrote {path} ({cls}); next:", highlight=False)
    console.print(f"  tape check {path}", highlight=False)
    console.print(f"  tape backtest AAPL --strategy {path}", highlight=False)
    console.print(f"  tape optimize AAPL --strategy {path} --grid window=10,20,40", highlight=False)


new_app.command("strategy")(new_strategy_cmd)
