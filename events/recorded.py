"""A session's recorded inputs: the bars it was given (BarsRecorded) and the bars it received cycle by
cycle (BarReceived), turned back into what the core reads. Pure: events in, bar series out."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from tape.events.bars import BarSeries
from tape.events.schema import BarReceived, BarsRecorded, Event


def bars_recorded(series: Sequence[BarSeries], role: str, ts: int | None = None) -> list[BarsRecorded]:
    """One BarsRecorded per symbol with bars, stamped ``ts`` (default: the symbol's first bar)."""
    return [
        BarsRecorded(
            ts=int(s.ts[0]) if ts is None else ts,
            symbol=s.symbol,
            timeframe=s.timeframe,
            role=role,  # type: ignore[arg-type]
            times=s.ts.tolist(),
            open=s.open.tolist(),
            high=s.high.tolist(),
            low=s.low.tolist(),
            close=s.close.tolist(),
            volume=s.volume.tolist(),
            source=s.source,
            adjusted=s.adjusted,
        )
        for s in series
        if len(s)
    ]


def series_of(record: BarsRecorded) -> BarSeries:
    """The bar series a BarsRecorded holds, bit for bit (its fingerprint is the recorded one)."""
    return BarSeries.from_arrays(
        record.symbol,
        record.timeframe,
        np.array(record.times, dtype=np.int64),
        *(np.array(c, dtype=np.float64) for c in (record.open, record.high, record.low, record.close)),
        np.array(record.volume, dtype=np.float64),
        source=record.source or "log",
        adjusted=record.adjusted,
        validate=False,
    )


def recorded_series(events: Iterable[Event], role: str) -> list[BarSeries]:
    """The series of ``role`` a run recorded, in the order it recorded them."""
    return [series_of(e) for e in events if isinstance(e, BarsRecorded) and e.role == role]


def received_groups(events: Iterable[Event]) -> list[list[BarReceived]]:
    """The bars a live session received, one group per timestamp, in the order they were logged."""
    groups: list[list[BarReceived]] = []
    for event in events:
        if not isinstance(event, BarReceived):
            continue
        if groups and groups[-1][0].ts == event.ts:
            groups[-1].append(event)
        else:
            groups.append([event])
    return groups
