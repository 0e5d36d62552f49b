"""How `tape explain RUN --rebalance N` prints one rebalance."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from tape.cli.common import console, print_json
from tape.events.render import as_dict
from tape.events.report import market_time


def show_rebalance(started: Any, found: Any, lines: list[Any], *, json: bool) -> None:
    """The decision, then one row per symbol: values, weight held and aimed at, order, fill."""
    decision = found.event
    if json:
        print_json({"seq": found.seq, **as_dict(decision), "lines": [line._asdict() for line in lines]})
        return
    when = market_time(decision.ts, started.timeframe)
    console.print(
        f"rebalance {decision.n} of run {started.run_id} ({decision.strategy}) at the close of {when}: "
        f"{decision.trigger}, equity ${decision.equity:,.2f}, cash ${decision.cash:,.2f}; "
        "orders fill at the next open",
        soft_wrap=True,
        highlight=False,
    )
    table = Table()
    keys = sorted({k for line in lines for k in line.values})
    for column in ("symbol", *keys, "held %", "target %", "action", "qty", "fill", "note"):
        table.add_column(column, justify="left" if column in ("symbol", "action", "note") else "right")
    for line in lines:
        target = "keep" if line.target is None else f"{line.target * 100:.2f}"
        table.add_row(
            line.symbol,
            *(f"{line.values[k]:.4g}" if k in line.values else "" for k in keys),
            f"{line.current * 100:.2f}",
            target,
            line.action,
            f"{line.qty:+g}" if line.qty else "",
            f"{line.fill_price:.4f}" if line.fill_price is not None else "",
            line.note,
        )
    console.print(table)
