"""A timestamp's bars, decided: each strategy's side, then the portfolio core's decisions (the same
core a backtest uses, events/session.py), committed together so a crash never leaves half a timestamp
in the log."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tape.actors.alpaca.feed import LiveBar
from tape.actors.live_session.crypto import stop_entries, watch_pair
from tape.actors.live_session.health import BrokerHealth
from tape.actors.live_session.orders import commit
from tape.actors.live_session.trailing import watch_target
from tape.actors.schedule import is_crypto, is_session_end
from tape.events.bars import session_days
from tape.events.portfolio_state import evolve_each
from tape.events.schema import BarReceived, Event
from tape.events.timeframes import timeframe_ns

if TYPE_CHECKING:
    from tape.actors.live_session.session import LiveSession


def decide_timestamp(
    live: LiveSession, group: list[LiveBar], *, trade: bool
) -> tuple[list[Event], BrokerHealth]:
    """One timestamp's bars: every strategy decides, then the portfolio core, and the lot is committed
    in one transaction (``trade``: only the newest timestamp of a catch-up may trade)."""
    session, decided = live.session, []
    crypto = all(is_crypto(s) for s in live.config.symbols)
    # Every strategy decides before anything is logged: a strategy actor dying here leaves no half
    # timestamp in the log, and the timestamp's events are committed as one transaction below.
    sides = [live.strategies.decide(bar) for bar in group]
    for bar, (side, values, reason) in zip(group, sides, strict=True):
        day = int(session_days(np.array([bar.ts], dtype=np.int64))[0])
        decided.append(_received(bar, live.feed.timeframe))
        live.worked.count(session.state, bar.symbol)
        decided += session.observe(bar.ts, bar.symbol, bar.high, bar.low, bar.close, bar.volume)
        if trade and is_crypto(bar.symbol):
            decided += evolve_each(session.state, watch_pair(session.state, bar))
        elif trade:
            decided += evolve_each(session.state, watch_target(session.state, bar))
        closed = session.close_bar(bar.symbol, bar.ts, day, bar.close, side if trade else 0, values, reason)
        decided += stop_entries(session.state, closed, live.config.cost) if is_crypto(bar.symbol) else closed
    last = group[-1].ts
    live.cursor = max(live.cursor, last)
    ending = is_session_end(last, timeframe_ns(live.feed.timeframe), crypto=crypto)
    day_start = session.state.day_start_equity  # before this timestamp's mark moves it
    expired = live.worked.expiries(session.state, session.desk, ts=last, session_end=ending)
    decided += evolve_each(session.state, expired)
    decided += session.end_of_timestamp(last, session_end=ending)
    out, health = commit(live, decided, last)
    if live.monitor is not None:
        out += live.alerts(out, last, None, day_start=day_start, marked=ending)
    return out, health


def _received(bar: LiveBar, timeframe: str) -> BarReceived:
    return BarReceived(
        ts=bar.ts,
        symbol=bar.symbol,
        timeframe=timeframe,
        open=bar.open,
        high=bar.high,
        low=bar.low,
        close=bar.close,
        volume=bar.volume,
    )


def by_timestamp(bars: list[LiveBar]) -> list[list[LiveBar]]:
    """Bars (in time order) grouped by timestamp."""
    groups: list[list[LiveBar]] = []
    for bar in bars:
        if groups and groups[-1][0].ts == bar.ts:
            groups[-1].append(bar)
        else:
            groups.append([bar])
    return groups
