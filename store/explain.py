"""`tape explain`: the events behind one trade, found through the ids that link them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tape.events.errors import ConfigError
from tape.events.schema import Event, Fill, OrderIntent, PositionClosed, Signal
from tape.store.log import EventLog, Recorded
from tape.store.runs import run_events


def explain_trade(log: EventLog, run_id: str, number: int) -> list[Recorded]:
    """Every event of the run that concerns the symbol of trade ``number`` (1-based, in closing order),
    from the signal that led to the entry (a buy, or a sell for a short) up to the PositionClosed, a
    short's risk check (margin figures) and daily borrow fees included.

    A symbol holds at most one position at a time, so the symbol's events between those two points are
    exactly this trade's story: signal, intent, risk check, orders, fills, the protective order and exit.
    """
    events = list(run_events(log, run_id))
    closes = [r for r in events if isinstance(r.event, PositionClosed)]
    if number > len(closes):
        raise ConfigError(f"run {run_id} has {len(closes)} closed trades; --trade {number} does not exist")
    close = closes[number - 1]
    symbol = close.event.symbol  # type: ignore[attr-defined]
    ours = [r for r in events if getattr(r.event, "symbol", None) == symbol and r.seq <= close.seq]
    return ours[trade_story_start([r.event for r in ours], len(ours) - 1) :]


def trade_story_start(mine: Sequence[Event], close_at: int) -> int:
    """Index in ``mine`` (one symbol's events, in order) of the signal that led to the entry of the
    position closed at ``close_at``: walking back from the close to the entry's fill (a buy, or a sell
    for a short, at the entry time), its intent, then the signal before it. Where a link is missing the
    story starts at the next one found."""
    close: Any = mine[close_at]
    side = "sell" if close.qty < 0 else "buy"

    def back(start: int, kind: type, test: Any, default: int) -> int:
        return next(
            (i for i in range(start, -1, -1) if isinstance(mine[i], kind) and test(mine[i])),
            default,
        )

    # A reversal's exit fills on the entry's side at the entry time: only the entry's own fill counts.
    fill = back(
        close_at,
        Fill,
        lambda e: e.side == side and e.ts == close.entry_ts and e.reason in ("entry", ""),
        close_at,
    )
    intent = back(fill - 1, OrderIntent, lambda e: e.side == side, fill)
    return back(intent - 1, Signal, lambda e: e.side == side, intent)
