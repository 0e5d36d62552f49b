"""Crafted bars traded live at the local Alpaca emulator: the venue that plays each ended bar, and a
live session run (with restarts) over it, shared by the live order-type tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tape.actors.alpaca.broker import AlpacaBroker
from tape.actors.alpaca.feed import AlpacaBarFeed
from tape.actors.clock import SimulatedClock
from tape.actors.live_session import LiveSession, run_schedule
from tape.events.backtest import BacktestConfig
from tape.events.bars import BarSeries
from tape.events.costs import CostModel
from tape.events.risk import RiskConfig
from tape.events.schema import Event
from tape.store.credentials import AlpacaCredentials
from tape.store.log import EventLog
from tests.alpaca_emulator import AlpacaEmulator

BAR_NS = 5 * 60 * 1_000_000_000
QUIET = (100.0, 100.2, 99.8, 100.0)  # a bar no entry priced 0.5 % off 100 reaches

Moves = dict[int, tuple[float, float, float, float]]


def crafted_bars(symbol: str, ts: np.ndarray, moves: Moves) -> BarSeries:
    """Five-minute bars quiet at 100, with ``moves`` (bar index -> open, high, low, close) crafted in."""
    rows = [moves.get(k, QUIET) for k in range(len(ts))]
    o, h, lo, c = (np.array([r[i] for r in rows]) for i in range(4))
    return BarSeries.from_arrays(symbol, "5Min", ts, o, h, lo, c, np.full(len(ts), 1000.0), source="test")


def utc(ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC)


class Venue:
    """The emulator's market: every bar that has ended by the clock's time is traded through (the open
    as a print, then continuously to the extremes and the close: emu.play_bar)."""

    def __init__(self, emulator: AlpacaEmulator, bars: BarSeries) -> None:
        self.emulator, self.bars, self.played = emulator, bars, 0
        emulator.add_asset(bars.symbol)
        emulator.add_bars(
            bars.symbol,
            [
                (utc(int(t)), o, h, lo, c, 1000)
                for t, o, h, lo, c in zip(bars.ts, bars.open, bars.high, bars.low, bars.close, strict=True)
            ],
        )

    def advance(self, now_ns: int) -> None:
        b = self.bars
        while self.played < len(b) and int(b.ts[self.played]) + BAR_NS <= now_ns:
            k = self.played
            self.emulator.set_time(utc(int(b.ts[k]) + 60_000_000_000))  # inside the bar
            self.emulator.play_bar(b.symbol, b.open[k], b.high[k], b.low[k], b.close[k])
            self.played += 1
        self.emulator.set_time(utc(now_ns))


def emulator_credentials(emulator: AlpacaEmulator) -> AlpacaCredentials:
    return AlpacaCredentials(
        api_key=emulator.key_id,
        secret_key=emulator.secret,
        base_url=emulator.trading_url,
        data_url=emulator.data_url,
    )


def run_live(
    venue: Venue,
    log_path: Path,
    config: BacktestConfig,
    *,
    run_id: str,
    start_ns: int,
    until_ns: Sequence[int],
    days_back: int,
) -> list[Event]:
    """A live session at the venue's emulator from ``start_ns``; each of ``until_ns`` but the last ends
    the process there and a new one resumes the run from the log. Returns the run's logged events."""
    credentials = emulator_credentials(venue.emulator)
    clock = SimulatedClock(start_ns, on_advance=venue.advance)
    venue.advance(start_ns)
    for until in until_ns:
        session = LiveSession(
            config,
            run_id=run_id,
            broker=AlpacaBroker(credentials, retry_wait_seconds=0),
            feed=AlpacaBarFeed(credentials, "5Min", retry_wait_seconds=0),
            log_path=log_path,
        )
        session.start(clock.now_ns(), days_back=days_back)
        run_schedule(session, clock, 300, until_ns=int(until))
        session.stop(clock.now_ns())
    with EventLog.open(log_path) as log:
        return [r.event for r in log.read(stream_prefix=f"run/{run_id}")]


def event_kind(event: Event) -> str:
    return type(event).__struct_config__.tag  # type: ignore[return-value]


def fills(decisions: list[tuple[object, ...]]) -> list[tuple[int, str, float]]:
    """(bar, reason, price) of the fills among (bar, kind, fields) decisions."""
    return [(bar, f["reason"], f["price"]) for bar, kind, f in decisions if kind == "fill"]  # type: ignore[index,misc]


def one_entry_config(symbol: str, spec: str, signal: int, cost: CostModel, **risk: Any) -> BacktestConfig:
    """``spec`` (a strategy taking ``at``) entering once, at bar ``signal``, 10 at a time, without the
    default stop and target unless ``risk`` sets them."""
    return BacktestConfig(
        symbols=[symbol],
        strategy=spec,
        params={"at": signal},
        timeframe="5Min",
        cash=100_000.0,
        cost=cost,
        risk=RiskConfig(**{"fixed_qty": 10, "stop_loss_pct": 0, "take_profit_pct": 0, **risk}),
    )
