"""The state of one trading run as a person watching it wants it, folded from the run's events alone.

`tape status` and `tape watch` both print this, so what the dashboard shows and what a script reads
with ``--json`` cannot disagree. Pure: no clock, no I/O; a live run and its replay give the same status.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
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


@dataclass
class _Seen:
    """What :func:`run_status` gathers from a run's events in one pass."""

    started: RunStarted | None = None
    ended: RunEnded | None = None
    last_ts: int = 0
    equity: EquityMarked | None = None
    marks: deque[float] = field(default_factory=lambda: deque(maxlen=EQUITY_POINTS))
    decisions: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT))
    alerts: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT))
    alert_count: int = 0
    actors: dict[str, dict[str, Any]] = field(default_factory=dict)
    cycles: int = 0

    def take(self, event: Event) -> None:
        self.last_ts = max(self.last_ts, event.ts)
        if isinstance(event, RunStarted):
            self.started = event
        elif isinstance(event, RunEnded):
            self.ended = event
        elif isinstance(event, EquityMarked):
            self.equity = event
            self.marks.append(event.equity)
        elif isinstance(event, Alert):
            self.alert_count += 1
            self.alerts.append(
                {"ts": event.ts, "rule": event.rule, "severity": event.severity, "message": event.message}
            )
        elif isinstance(event, ActorStarted | ActorStopped):
            self._actor(event)
        elif isinstance(event, CycleCompleted):
            self.cycles += 1
        elif not isinstance(event, NotificationSent | NotificationFailed):
            line = _decision(event)
            if line is not None:
                self.decisions.append(line)

    def _actor(self, event: ActorStarted | ActorStopped) -> None:
        name = " ".join(p for p in (event.actor, event.symbol, event.strategy) if p)
        actor = self.actors.setdefault(name, {"actor": name, "state": "", "starts": 0, "detail": ""})
        if isinstance(event, ActorStarted):
            actor.update(state="running", starts=actor["starts"] + 1, detail=event.detail)
        else:
            actor.update(state="stopped", detail=event.reason)


def run_status(events: Iterable[Event]) -> dict[str, Any]:
    """Positions, P&L per symbol, equity, recent decisions, alerts, actor and notification health."""
    events = list(events)
    seen = _Seen()
    for event in events:
        seen.take(event)
    started, ended, equity = seen.started, seen.ended, seen.equity
    if ended is not None:  # a finished run's actors are gone, whether or not they logged stopping
        for actor in seen.actors.values():
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
        "last_ts": seen.last_ts,
        "cycles": seen.cycles,
        "equity": equity.equity if equity else None,
        "cash": equity.cash if equity else None,
        "drawdown_pct": equity.drawdown_pct if equity else None,
        "equity_curve": list(seen.marks),
        "positions": positions,
        "realized_pnl": realized / 100.0,
        "unrealized_pnl": unrealized / 100.0,
        "total_pnl": (realized + unrealized) / 100.0,
        "decisions": list(seen.decisions),
        "alerts": list(seen.alerts),
        "alert_count": seen.alert_count,
        "actors": list(seen.actors.values()),
        "notifications": notification_health(events),
    }
