"""Folds: rebuilding state from events alone."""

from __future__ import annotations

from collections.abc import Iterable

from tape.events.schema import Event, Fill


def fold_positions(events: Iterable[Event]) -> dict[str, float]:
    """Net quantity held per symbol after applying every fill (buys add, sells subtract)."""
    held: dict[str, float] = {}
    for event in events:
        if event.__class__ is Fill:
            qty = event.qty if event.side == "buy" else -event.qty  # type: ignore[attr-defined]
            held[event.symbol] = held.get(event.symbol, 0.0) + qty  # type: ignore[attr-defined]
    return {s: q for s, q in held.items() if q != 0.0}
