"""A live session re-run on the model: its recorded bars through the same per-bar core, fills simulated.

The strategies and the portfolio's indicators are warmed on the session's recorded warm-up window
(not traded, as live), then every bar the session received is decided in the order it arrived: the
working order fills at the bar's open (the simulated broker's model), the resting stop/target is
checked, the strategy decides at the close. Sessions are marked where the live run marked them. Pure:
recorded events in, the model run's events out.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import numpy as np

from tape.events.backtest import BacktestConfig, run_started
from tape.events.bars import BarSeries, session_days
from tape.events.schema import BarReceived, Event, RunEnded
from tape.events.session import TradingSession
from tape.events.strategies import make_strategy


def run_session_model(
    config: BacktestConfig,
    warm: Sequence[BarSeries],
    groups: Sequence[Sequence[BarReceived]],
    marked: set[int],
    *,
    run_id: str,
    code_version: str,
) -> list[Event]:
    """The model run of a session: RunStarted (fingerprinting ``warm``), the decisions on ``groups``
    (the bars received, one list per timestamp), RunEnded. ``marked``: the timestamps the session
    marked its equity at (ends of sessions)."""
    strategy = make_strategy(config.strategy, config.params)
    session = TradingSession(config, run_id, strategy.name)
    lives = {symbol: strategy.live() for symbol in config.symbols}
    for series in warm:  # indicators only: live decided nothing on its warm-up window
        live = lives[series.symbol]
        for i in range(len(series)):
            o, h, lo, c, v = (float(col[i]) for col in _columns(series))
            live.on_bar(o, h, lo, c, v)
            session.observe(int(series.ts[i]), series.symbol, h, lo, c, v)
            session.last_close[series.symbol] = c
    first = min([int(s.ts[0]) for s in warm if len(s)] + [g[0].ts for g in groups[:1]])
    started = run_started(config, warm, run_id=run_id, mode="replay", code_version=code_version)
    out: list[Event] = [msgspec.structs.replace(started, ts=first)]
    for group in groups:
        for bar in group:
            day = int(session_days(np.array([bar.ts], dtype=np.int64))[0])
            out += session.open_bar(bar.symbol, bar.ts, bar.open, bar.high, bar.low)
            out += session.observe(bar.ts, bar.symbol, bar.high, bar.low, bar.close, bar.volume)
            side, values = lives[bar.symbol].on_bar(bar.open, bar.high, bar.low, bar.close, bar.volume)
            reason = strategy.describe(side, values) if side else ""
            out += session.close_bar(bar.symbol, bar.ts, day, bar.close, side, values, reason)
        out += session.end_of_timestamp(group[-1].ts, session_end=group[-1].ts in marked)
    last = groups[-1][-1].ts if groups else first
    out.append(RunEnded(ts=last, run_id=run_id, status="completed", bars=sum(len(g) for g in groups)))
    return out


def _columns(series: BarSeries) -> tuple[np.ndarray, ...]:
    return series.open, series.high, series.low, series.close, series.volume
