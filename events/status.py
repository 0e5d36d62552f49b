"""The state of one trading run as a person watching it wants it, folded from the run's events alone.

`tape status` and `tape watch` both print this, so what the dashboard shows and what a script reads
with ``--json`` cannot disagree. Pure: no clock, no I/O; a live run and its replay give the same status.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from tape.events.costs import cents
from tape.events.notifications import notification_health
from tape.events.pnl import pnl_by_symbol
from tape.events.schema import (
    ActorStarted,
    ActorStopped,
    Alert,
    CycleCompleted,
    EquityMarked,
    Event,
    Fill,
    NotificationFailed,
    NotificationSent,
    OrderRejected,
    OrderSubmitted,
    PositionClosed,
    RunEnded,
    RunStarted,
    Signal,
)

RECENT = 8  # decisions and alerts kept for the screen
EQUITY_POINTS = 60  # marks kept for the sparkline


def _decision(event: Event) -> dict[str, Any] | None:
    """One line of the recent-decisions list, or None for events that are not decisions."""
    e: Any = event
    if isinstance(event, Signal):
        text = f"{e.side} at {e.price:.2f}"
        return {"ts": e.ts, "kind": "signal", "symbol": e.symbol, "text": text, "reason": e.reason}
    if isinstance(event, OrderSubmitted):
        return {"ts": e.ts, "kind": "order", "symbol": e.symbol, "text": f"{e.side} {e.qty:g}"}
    if isinstance(event, Fill):
        return {"ts": e.ts, "kind": "fill", "symbol": e.symbol, "text": f"{e.side} {e.qty:g} @ {e.price:.2f}"}
    if isinstance(event, OrderRejected):
        return {"ts": e.ts, "kind": "rejected", "symbol": e.symbol, "text": e.reason}
    if isinstance(event, PositionClosed):
        text = f"closed {e.qty:g} ({e.exit_reason}) net {e.net_pnl:+.2f}"  # a part close shows its part
        return {"ts": e.ts, "kind": "close", "symbol": e.symbol, "text": text}
    return None


def run_status(events: Iterable[Event]) -> dict[str, Any]:
    """Positions, P&L per symbol, equity, recent decisions, alerts, actor and notification health."""
    events = list(events)
    started: RunStarted | None = None
    ended: RunEnded | None = None
    last_ts = 0
    marks: deque[float] = deque(maxlen=EQUITY_POINTS)
    equity: EquityMarked | None = None
    decisions: deque[dict[str, Any]] = deque(maxlen=RECENT)
    alerts: deque[dict[str, Any]] = deque(maxlen=RECENT)
    alert_count = 0
    actors: dict[str, dict[str, Any]] = {}
    cycles = 0
    for event in events:
        last_ts = max(last_ts, event.ts)
        if isinstance(event, RunStarted):
            started = event
        elif isinstance(event, RunEnded):
            ended = event
        elif isinstance(event, EquityMarked):
            equity = event
            marks.append(event.equity)
        elif isinstance(event, Alert):
            alert_count += 1
            alerts.append(
                {"ts": event.ts, "rule": event.rule, "severity": event.severity, "message": event.message}
            )
        elif isinstance(event, ActorStarted | ActorStopped):
            name = " ".join(p for p in (event.actor, event.symbol, event.strategy) if p)
            actor = actors.setdefault(name, {"actor": name, "state": "", "starts": 0, "detail": ""})
            if isinstance(event, ActorStarted):
                actor.update(state="running", starts=actor["starts"] + 1, detail=event.detail)
            else:
                actor.update(state="stopped", detail=event.reason)
        elif isinstance(event, CycleCompleted):
            cycles += 1
        elif not isinstance(event, NotificationSent | NotificationFailed):
            line = _decision(event)
            if line is not None:
                decisions.append(line)
    if ended is not None:  # a finished run's actors are gone, whether or not they logged stopping
        for actor in actors.values():
            if actor["state"] == "running":
                actor["state"] = "ended"
    positions = pnl_by_symbol(events)
    realized = sum(cents(p["realized_pnl"]) for p in positions.values())
    unrealized = sum(cents(p["unrealized_pnl"]) for p in positions.values())
    return {
        "run_id": started.run_id if started else "",
        "mode": started.mode if started else "",
        "strategy": started.strategy if started else "",
        "symbols": list(started.symbols) if started else [],
        "label": started.label if started else "",
        "state": (ended.status if ended else "running") if started else "unknown",
        "last_ts": last_ts,
        "cycles": cycles,
        "equity": equity.equity if equity else None,
        "cash": equity.cash if equity else None,
        "drawdown_pct": equity.drawdown_pct if equity else None,
        "equity_curve": list(marks),
        "positions": positions,
        "realized_pnl": realized / 100.0,
        "unrealized_pnl": unrealized / 100.0,
        "total_pnl": (realized + unrealized) / 100.0,
        "decisions": list(decisions),
        "alerts": list(alerts),
        "alert_count": alert_count,
        "actors": list(actors.values()),
        "notifications": notification_health(events),
    }
