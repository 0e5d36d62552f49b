"""`tape explain RUN --rebalance N`: one rebalance of a portfolio strategy, symbol by symbol."""

from __future__ import annotations

from typing import Any, NamedTuple

from tape.events.errors import ConfigError
from tape.events.schema import Fill, OrderCancelled, Rebalanced
from tape.store.log import EventLog, Recorded
from tape.store.runs import run_events


class RebalanceLine(NamedTuple):
    """What one symbol did at a rebalance, and why."""

    symbol: str
    values: dict[str, float]  # the recorded numbers behind its weight (score, rank, ...)
    current: float  # weight held before
    target: float | None  # weight aimed at (None: the strategy had no opinion, kept)
    action: str  # buy, add, trim, sell, keep
    qty: float  # signed order quantity (0: none)
    fill_price: float | None
    note: str  # why no order, or why the order did not fill


def explain_rebalance(log: EventLog, run_id: str, number: int) -> tuple[Recorded, list[RebalanceLine]]:
    """The ``number``-th Rebalanced decision of the run (1-based) and a line per symbol it concerns:
    held before, aimed at, or ordered."""
    events = list(run_events(log, run_id))
    decisions = [r for r in events if isinstance(r.event, Rebalanced)]
    if not decisions:
        raise ConfigError(f"run {run_id} has no rebalances (it is not a portfolio strategy's run)")
    if not 1 <= number <= len(decisions):
        raise ConfigError(
            f"run {run_id} has {len(decisions)} rebalances; --rebalance {number} does not exist"
        )
    found = decisions[number - 1]
    decision: Any = found.event
    prefix = f"{run_id}-r{decision.n}-"
    outcome: dict[str, Any] = {}
    for r in events:
        event: Any = r.event
        if isinstance(event, Fill | OrderCancelled) and event.client_order_id.startswith(prefix):
            outcome[event.symbol] = event
    symbols = sorted(
        {*decision.current, *decision.orders, *(s for s, w in decision.targets.items() if w)},
        key=lambda s: (-decision.targets.get(s, 0.0), s),
    )
    return found, [_line(decision, s, outcome.get(s)) for s in symbols]


def _line(decision: Any, symbol: str, outcome: Any) -> RebalanceLine:
    current = decision.current.get(symbol, 0.0)
    target = decision.targets.get(symbol)
    qty = decision.orders.get(symbol, 0.0)
    if qty > 0:
        action = "buy" if current == 0 else "add"
    elif qty < 0:
        action = "sell" if target == 0 else "trim"
    else:
        action = "keep"
    note = ""
    if qty == 0 and target is not None and target != current:
        note = "difference below --min-trade/--drift, or under one share"
    if isinstance(outcome, OrderCancelled):
        note = f"not filled: {outcome.reason}"
    price = outcome.price if isinstance(outcome, Fill) else None
    return RebalanceLine(
        symbol, dict(decision.values.get(symbol, {})), current, target, action, qty, price, note
    )
