"""What the live engine is started with and what `tape spawn` asks of it (plain values: they cross Ray)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from tape.actors.clock import BrokerClock, Clock, WallClock, parse_clock
from tape.events.backtest import BacktestConfig
from tape.events.monitor import MonitorConfig
from tape.store.credentials import load_alpaca_credentials

ENGINE_STREAM = "engine"  # the engine's own stream: its options, its actors' starts, sessions spawned
DEFAULT_FEED = "alpaca"  # what `tape up` runs with when neither given nor used before on the log
DEFAULT_CLOCK = "wall"


class EngineOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Fixed for the engine's life (`tape up`)."""

    log_path: str  # absolute: Ray workers do not share the caller's working directory
    workdir: str = ""  # where logs/trades_<symbol>_<day>.csv are written ("" = none)
    dotenv: str = ""  # a .env file with the Alpaca credentials ("" = the environment only)
    broker: str = "alpaca"
    feed: str = DEFAULT_FEED
    clock: str = DEFAULT_CLOCK  # wall, or broker[:POLL_SECONDS] (see actors/clock.py)
    namespace: str = "tape"


class SessionSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One (symbol, strategy) session: its schedule and the config it trades with."""

    symbol: str
    strategy: str
    interval: str = "5m"
    days_back: int = 5
    config: BacktestConfig
    trade_updates: bool = True  # listen to Alpaca's trade-update stream (how, not what: not in the run id)
    monitor: MonitorConfig | None = None  # the alert thresholds (None: no monitor; not in the run id)
    code: list[Any] = []  # a user strategy's source (StrategyCode), installed where the session runs

    @property
    def key(self) -> tuple[str, str]:
        return (self.symbol, self.strategy)


def engine_clock(options: EngineOptions) -> Clock:
    """The clock an engine and its actors run on: the wall clock, or the broker's (``--clock broker``)."""
    kind, poll = parse_clock(options.clock)
    if kind == "wall":
        return WallClock()
    from tape.actors.alpaca.broker import AlpacaBroker  # alpaca-py loads only for a broker clock

    credentials = load_alpaca_credentials(dotenv_path=Path(options.dotenv) if options.dotenv else None)
    return BrokerClock(AlpacaBroker(credentials).clock_ns, poll)
