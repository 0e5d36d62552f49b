"""What changed between a run and its what-if: trades added, removed or altered, the headline deltas,
and the first decision that diverged, with the reason each run gave. Pure: two event lists in."""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec

from tape.events.metrics import Trade
from tape.events.report import RunReport
from tape.events.schema import (
    Event,
    Fill,
    OrderCancelled,
    OrderIntent,
    OrderRejected,
    OrderSubmitted,
    PositionClosed,
    RiskAccepted,
    RiskRejected,
    RunDerived,
    RunEnded,
    RunStarted,
    Signal,
)

HEADLINE = ("total_pnl", "return_pct", "max_drawdown_pct", "total_trades")
_BOOKKEEPING = (RunStarted, RunDerived, RunEnded)
_DECISIONS = (
    Signal,
    OrderIntent,
    RiskAccepted,
    RiskRejected,
    OrderSubmitted,
    OrderRejected,
    OrderCancelled,
    Fill,
    PositionClosed,
)


class TradeChange(NamedTuple):
    """One trade only one run made ("added", "removed"), or the same entry closed differently ("altered")."""

    change: str
    symbol: str
    entry_ts: int
    before: Trade | None
    after: Trade | None


class Divergence(NamedTuple):
    """The first decision that differs: its position among the decisions, and each run's event."""

    index: int
    original: Event | None
    derived: Event | None


class WhatIfDiff(NamedTuple):
    """A what-if's effect on its origin."""

    trades: list[TradeChange]
    deltas: dict[str, float]  # headline metric -> derived minus original
    divergence: Divergence | None


_ID_FIELDS = ("intent_id", "client_order_id", "exec_id")


def decisions(events: list[Event]) -> list[Event]:
    """A run's decisions (signals, intents, risk verdicts, orders, fills, closes), in order."""
    return [e for e in events if isinstance(e, _DECISIONS)]


def run_neutral(event: Event, run_id: str) -> Event:
    """``event`` with the run's id taken out of its order and intent ids (``<run>-i1`` -> ``-i1``), so
    the same decision in two runs compares equal."""
    changed = {
        name: value.replace(run_id, "")
        for name in _ID_FIELDS
        if isinstance(value := getattr(event, name, None), str) and run_id in value
    }
    return msgspec.structs.replace(event, **changed) if changed else event


def first_divergence(original: list[Event], derived: list[Event]) -> Divergence | None:
    """The first decision where the two runs differ, their ids aside (None: the same decisions, in the
    same order)."""
    a, b = decisions(original), decisions(derived)
    id_a, id_b = _run_id(original), _run_id(derived)
    for index in range(max(len(a), len(b))):
        x = a[index] if index < len(a) else None
        y = b[index] if index < len(b) else None
        if x is None or y is None or run_neutral(x, id_a) != run_neutral(y, id_b):
            return Divergence(index, x, y)
    return None


def _run_id(events: list[Event]) -> str:
    started = events[0] if events else None
    return started.run_id if isinstance(started, RunStarted) else "\x00"


def reason_of(event: Event | None) -> str:
    """Why a decision was taken, in the run's own words ("" for no decision)."""
    e: Any = event
    match event:
        case None:
            return "no such decision"
        case Signal():
            return f"{e.side} signal: {e.reason}" if e.reason else f"{e.side} signal"
        case OrderIntent():
            return f"{e.side} {e.qty:g} ({e.reason})"
        case RiskRejected():
            return f"risk rejected ({e.rule}): {e.message}"
        case RiskAccepted():
            return f"risk accepted {e.qty:g}{_checks(e.checks)}"
        case OrderSubmitted():
            stop = f" stop {e.stop_price:g}" if e.stop_price is not None else ""
            limit = f" limit {e.limit_price:g}" if e.limit_price is not None else ""
            return f"{e.order_type} {e.side} {e.qty:g}{stop}{limit} ({e.reason})"
        case OrderRejected() | OrderCancelled():
            return f"{type(event).__name__}: {e.reason}"
        case Fill():
            return f"fill {e.side} {e.qty:g} @ {e.price:g} ({e.reason})"
        case PositionClosed():
            return f"closed on {e.exit_reason}, net {e.net_pnl:,.2f}"
    return type(event).__name__


def _checks(checks: dict[str, float]) -> str:
    """The numbers a risk verdict rested on (stop, size, ...), as the run logged them."""
    return f" ({', '.join(f'{k} {v:g}' for k, v in sorted(checks.items()))})" if checks else ""


def trade_changes(before: list[Trade], after: list[Trade]) -> list[TradeChange]:
    """Trades matched on (symbol, entry time): those only in one run, and those closed differently."""
    old = {(t.symbol, t.entry_ts): t for t in before}
    new = {(t.symbol, t.entry_ts): t for t in after}
    out = []
    for key in sorted(old.keys() | new.keys(), key=lambda k: (k[1], k[0])):
        x, y = old.get(key), new.get(key)
        if x is None:
            out.append(TradeChange("added", key[0], key[1], None, y))
        elif y is None:
            out.append(TradeChange("removed", key[0], key[1], x, None))
        elif x != y:
            out.append(TradeChange("altered", key[0], key[1], x, y))
    return out


def compare_whatif(
    original: RunReport, derived: RunReport, original_events: list[Event], derived_events: list[Event]
) -> WhatIfDiff:
    """What the what-if changed against its origin."""
    deltas = {
        key: float(derived.metrics.get(key, 0.0)) - float(original.metrics.get(key, 0.0)) for key in HEADLINE
    }
    return WhatIfDiff(
        trade_changes(original.trades, derived.trades),
        deltas,
        first_divergence(original_events, derived_events),
    )


def without_bookkeeping(events: list[Event]) -> list[Event]:
    """A run's events without its start, link and end (the parts that name the run), its id taken out
    of the order and intent ids: what two runs of the same decisions share."""
    run_id = _run_id(events)
    return [run_neutral(e, run_id) for e in events if not isinstance(e, _BOOKKEEPING)]
