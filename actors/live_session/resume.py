"""Resuming a run from the log: the portfolio is folded from the run's events, the strategies re-warm
on exactly the bars they saw before (the warm-up window the run's RunStarted fingerprinted, then every
bar the log recorded), and a fresh run is opened on the warm-up the broker serves now."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tape.actors.alpaca.feed import LiveBar
from tape.actors.live_session.borrow import with_logged_shortable
from tape.actors.live_session.contracts import DAY_NS, UNSENT
from tape.actors.live_session.projection import decision_of
from tape.events.backtest import run_started
from tape.events.bars import BarSeries
from tape.events.errors import DataError, DataUnreachable
from tape.events.portfolio_state import evolve_each
from tape.events.schema import Alert, BarReceived, CycleCompleted, Event, OrderCancelled, RunStarted
from tape.events.streams import bars_stream
from tape.events.timeframes import timeframe_ns

WARM_UP_ATTEMPTS = 3  # a warm-up request that times out is asked again this many times in all

if TYPE_CHECKING:
    from tape.actors.live_session.session import LiveSession


def fold_log(live: LiveSession) -> tuple[int, list[LiveBar]]:
    """Rebuild the session from the run's events; returns how many there were and the bars the run
    received (its strategies saw them, so a restarted strategy must see them again)."""
    n, bars = 0, []
    for record in live.log.read(stream_prefix=f"run/{live.run_id}"):
        n += 1
        event = record.event
        if isinstance(event, BarReceived):
            live.worked.count(live.session.state, event.symbol)  # as decide_timestamp counted it
            bars.append(live_bar(event))
            live.cursor = max(live.cursor, event.ts)
        elif isinstance(event, CycleCompleted):
            live.cycles = max(live.cycles, event.cycle)
            live.last_cycle_ts = max(live.last_cycle_ts, event.ts)
            live.cancels_in_flight = []
        elif isinstance(event, OrderCancelled) and event.reason not in UNSENT:
            live.cancels_in_flight.append(event.client_order_id)
        elif isinstance(event, RunStarted):  # the stream's first event: nothing is folded yet
            live.use_config(with_logged_shortable(live.config, event))
            live.opening = event
            live.cursor = max([live.cursor, *(fp.end_ts for fp in event.data)])
        live.last_decision = decision_of(event) or live.last_decision
        live.guard.track(event)
        live.outages.fold(event)
        evolve_each(live.session.state, [event])
        if live.monitor is not None:
            live.monitor.fold((event,))
    live.worked.forget_pending()
    live.next_seq = n + 1
    return n, bars


def warm_up_bars(live: LiveSession, now_ns: int, days_back: int) -> tuple[list[LiveBar], list[Event]]:
    """The bars to warm the strategies on, and alerts about them: a resumed run's original window, a
    new run's last ``days_back`` days."""
    if live.opening is not None:
        return original_history(live, now_ns)
    return _asked_again(live.feed.completed, live.config.symbols, now_ns - days_back * DAY_NS, now_ns), []


def _asked_again(completed: Any, *args: Any) -> list[LiveBar]:
    """``completed(*args)``, asked up to ``WARM_UP_ATTEMPTS`` times while the feed does not answer: one
    slow answer must not stop a session from starting (a cycle's own outage handling is not there yet)."""
    for attempt in range(1, WARM_UP_ATTEMPTS + 1):
        try:
            return completed(*args)  # type: ignore[no-any-return]
        except DataUnreachable:
            if attempt == WARM_UP_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def original_history(live: LiveSession, now_ns: int) -> tuple[list[LiveBar], list[Event]]:
    """The warm-up bars the run started on (the window its RunStarted fingerprinted), and an alert
    when the broker no longer serves the same bytes (then the re-warmed indicators may differ)."""
    assert live.opening is not None
    prints = {fp.symbol: fp for fp in live.opening.data if fp.rows}
    if not prints:
        return [], []
    timeframe = live.feed.timeframe
    first = min(fp.start_ts for fp in prints.values())
    last = max(fp.end_ts for fp in prints.values())
    bars = _asked_again(live.feed.completed, live.config.symbols, first - 1, last + timeframe_ns(timeframe))
    bars = [b for b in bars if b.symbol in prints and _inside(b.ts, prints[b.symbol])]
    served = {s.symbol: s.fingerprint().sha256 for s in series(bars, list(prints), timeframe)}
    changed = sorted(s for s, fp in prints.items() if served.get(s) != fp.sha256)
    if not changed:
        return bars, []
    message = f"the broker's warm-up bars for {', '.join(changed)} differ from the run's start"
    return bars, [Alert(ts=now_ns, rule="warm_up", severity="warning", message=message)]


def opening(live: LiveSession, history: list[LiveBar], days_back: int) -> RunStarted:
    """A new run's RunStarted, fingerprinting the warm-up it starts on (every symbol must have some)."""
    missing = sorted(set(live.config.symbols) - {b.symbol for b in history})
    if missing:
        raise DataError(
            f"no {live.feed.timeframe} bars for {', '.join(missing)} in the last {days_back} days"
        )
    from tape.store.backtests import code_version

    return run_started(
        live.config,
        series(history, live.config.symbols, live.feed.timeframe),
        run_id=live.run_id,
        mode="live",
        code_version=code_version(),
        label=live.label,
    )


def warm_up(live: LiveSession, bars: list[LiveBar]) -> None:
    """Feed ``bars`` to the strategies and the portfolio's prices. Indicators only: decisions on these
    bars were made (or not) before this actor existed."""
    live.strategies.warm(bars)
    for bar in bars:
        live.session.observe(bar.ts, bar.symbol, bar.high, bar.low, bar.close, bar.volume)
        live.session.last_close[bar.symbol] = bar.close


def bars_seen(live: LiveSession, symbol: str) -> list[LiveBar]:
    """Every bar of ``symbol`` the run's strategy has been fed: the warm-up window, then the bars the
    log recorded."""
    logged = [live_bar(e) for e in live.log.events(stream=bars_stream(live.run_id, symbol))]
    return [b for b in live.history if b.symbol == symbol] + logged


def live_bar(event: BarReceived) -> LiveBar:
    """A logged bar as the feed delivered it."""
    return LiveBar(event.symbol, event.ts, event.open, event.high, event.low, event.close, event.volume)


def series(history: list[LiveBar], symbols: Sequence[str], timeframe: str) -> list[BarSeries]:
    """Each symbol's bars as a BarSeries (what RunStarted fingerprints)."""
    out = []
    for symbol in symbols:
        rows = [b for b in history if b.symbol == symbol]
        cols = [
            np.array([getattr(b, c) for b in rows], dtype=np.float64)
            for c in ("open", "high", "low", "close", "volume")
        ]
        ts = np.array([b.ts for b in rows], dtype=np.int64)
        out.append(BarSeries.from_arrays(symbol, timeframe, ts, *cols, source="alpaca"))
    return out


def _inside(ts: int, fingerprint: Any) -> bool:
    return bool(fingerprint.start_ts <= ts <= fingerprint.end_ts)
