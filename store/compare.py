"""`tape compare`: two runs' decisions side by side (a paper or replay session against a backtest).

Decisions are compared without run-specific ids: what was signalled, intended, accepted or rejected,
ordered, filled and closed, when and at what price. Differences are classified so they explain
themselves: a different price (slippage), a different time (timing), or a decision only one run made
(a rejection, a missed signal).
"""

from __future__ import annotations

import difflib
from typing import Any, NamedTuple

from tape.events.schema import (
    Event,
    Fill,
    OrderCancelled,
    OrderIntent,
    OrderRejected,
    OrderSubmitted,
    PositionClosed,
    Rebalanced,
    RiskAccepted,
    RiskRejected,
    Signal,
)
from tape.store.log import EventLog
from tape.store.runs import find_run, run_events


class Decision(NamedTuple):
    """A decision stripped of ids: (kind, ts, symbol, what, price)."""

    kind: str
    ts: int
    symbol: str
    what: tuple[Any, ...]
    price: float | None


def decision_of(event: Event) -> Decision | None:
    """The comparable part of a decision event; None for bookkeeping events."""
    e: Any = event
    match event:
        case Signal():
            return Decision("signal", e.ts, e.symbol, (e.side,), e.price)
        case OrderIntent():
            return Decision("intent", e.ts, e.symbol, (e.side, e.qty, e.reason), e.ref_price)
        case RiskAccepted():
            return Decision("risk_accepted", e.ts, e.symbol, (e.qty,), None)
        case RiskRejected():
            return Decision("risk_rejected", e.ts, e.symbol, (e.rule,), None)
        case OrderSubmitted():
            return Decision("order", e.ts, e.symbol, (e.side, e.qty, e.order_type, e.reason), e.stop_price)
        case OrderCancelled():
            return Decision("cancel", e.ts, e.symbol, (e.reason,), None)
        case OrderRejected():
            return Decision("order_rejected", e.ts, e.symbol, (), None)
        case Fill():
            return Decision("fill", e.ts, e.symbol, (e.side, e.qty, e.reason), e.price)
        case PositionClosed():
            return Decision("close", e.ts, e.symbol, (e.exit_reason, e.qty), e.net_pnl)
        case Rebalanced():  # a portfolio strategy's whole decision: its targets and orders
            what = (e.trigger, tuple(sorted(e.targets.items())), tuple(sorted(e.orders.items())))
            return Decision("rebalance", e.ts, "", what, e.equity)
    return None


class Difference(NamedTuple):
    """One disagreement and its likely cause."""

    cause: str  # "price", "timing", "only_a", "only_b"
    a: Decision | None
    b: Decision | None
    change: str = ""  # when one run is a what-if of the other: the change that made the difference


class Comparison(NamedTuple):
    """Two runs compared decision by decision."""

    run_a: str
    run_b: str
    decisions_a: int
    decisions_b: int
    differences: list[Difference]
    change: str = ""  # "stop_loss=3 (b is a what-if of a)" when one run derives from the other


def load_decisions(log: EventLog, run_id: str) -> tuple[str, list[Decision]]:
    """A run's decisions in log order."""
    started = find_run(log, run_id)
    decisions = [d for r in run_events(log, started.run_id) if (d := decision_of(r.event)) is not None]
    return started.run_id, decisions


def compare_runs(log: EventLog, run_a: str, run_b: str) -> Comparison:
    """Align the two decision sequences and explain every difference."""
    id_a, a = load_decisions(log, run_a)
    id_b, b = load_decisions(log, run_b)
    change = derived_change(log, id_a, id_b)
    differences: list[Difference] = []
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for op, a_lo, a_hi, b_lo, b_hi in matcher.get_opcodes():
        if op == "equal":
            continue
        left, right = a[a_lo:a_hi], b[b_lo:b_hi]
        for k in range(max(len(left), len(right))):
            x = left[k] if k < len(left) else None
            y = right[k] if k < len(right) else None
            differences.append(Difference(_cause(x, y), x, y, change))
    return Comparison(id_a, id_b, len(a), len(b), differences, change)


def derived_change(log: EventLog, run_a: str, run_b: str) -> str:
    """The change that derives one run from the other (``tape whatif``), in words; "" when neither
    is a what-if of the other."""
    from tape.store.whatif import link_of

    for origin, derived, which in ((run_a, run_b, "b"), (run_b, run_a, "a")):
        link = link_of(log, derived)
        if link is not None and link.derived_from == origin:
            said = ", ".join(f"{k}={v}" for k, v in link.changes.items()) or "no change"
            return f"{said} ({which} is a what-if of {'a' if which == 'b' else 'b'})"
    return ""


def _cause(a: Decision | None, b: Decision | None) -> str:
    if a is None:
        return "only_b"
    if b is None:
        return "only_a"
    if (a.kind, a.symbol, a.what) == (b.kind, b.symbol, b.what) and a.ts == b.ts:
        return "price"
    if (a.kind, a.symbol, a.what) == (b.kind, b.symbol, b.what):
        return "timing"
    return "different"
