"""`tape explain`: the events behind one trade, found through the ids that link them."""

from __future__ import annotations

from tape.events.errors import ConfigError
from tape.events.schema import Fill, OrderIntent, PositionClosed, Signal
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
    entry_side = "sell" if close.event.qty < 0 else "buy"  # type: ignore[attr-defined]
    entry_fill = next(
        r
        for r in reversed(ours)
        if isinstance(r.event, Fill)
        and r.event.side == entry_side
        and r.event.ts == close.event.entry_ts  # type: ignore[attr-defined]
        and r.event.reason in ("entry", "")  # a reversal's exit fills on the entry's side at that time
    )
    intent_seq = max(
        (
            r.seq
            for r in ours
            if isinstance(r.event, OrderIntent) and r.seq < entry_fill.seq and r.event.side == entry_side
        ),
        default=entry_fill.seq,
    )
    signal_seq = max(
        (
            r.seq
            for r in ours
            if isinstance(r.event, Signal) and r.seq < intent_seq and r.event.side == entry_side
        ),
        default=intent_seq,
    )
    return [r for r in ours if r.seq >= signal_seq]
