"""The Ray actors of a trading session: one StrategyActor per (symbol, strategy), one PortfolioActor
(the only path to a broker, enforcing the risk limits), one LogWriter (the only writer of the file).

They are thin shells: the decisions are the pure core's (events/session.py, events/portfolio.py), so a
session on actors decides exactly what a backtest of the same bars decides.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tape.events.backtest import BacktestConfig
from tape.events.monitor import MonitorConfig, SessionMonitor
from tape.events.portfolio_state import evolve
from tape.events.schema import Event
from tape.events.session import TradingSession
from tape.events.strategies import make_strategy
from tape.store.log import EventLog, LogError
from tape.store.run_writer import run_items


class LogWriter:
    """Appends a run's events in the order they are handed over; durable (fsync'd) for real money."""

    def __init__(self, log_path: str, run_id: str, durable: bool) -> None:
        self._log = EventLog.create(Path(log_path), durable=durable)
        self._run_id = run_id
        prefix = f"run/{run_id}"
        self._versions: dict[str, int] = dict(
            self._log.query(
                "SELECT stream, max(version) FROM events WHERE stream >= ? AND stream < ? GROUP BY stream",
                (prefix, prefix + "\U0010ffff"),
            )
        )
        self._next = 1 + sum(self._versions.values())

    def append(self, events: list[Event]) -> int:
        """Append ``events`` as one transaction; returns how many the run holds now.

        Every stream is appended at the version this writer last saw: a process of an earlier attempt
        still writing the same run fails the append (ConcurrencyConflict) instead of interleaving."""
        if events:
            items = run_items(self._run_id, events, self._next)
            expected = {item.stream: self._versions.get(item.stream, 0) for item in items}
            result = self._log.append_batch(items, expected_versions=expected)
            if result.duplicate:  # numbered like ours, written by someone else: never ours to skip
                raise LogError(f"another process is writing run {self._run_id} to {self._log.path}")
            self._versions.update(result.versions)
            self._next += len(events)
        return self._next - 1

    def close(self) -> None:
        self._log.close()


class StrategyActor:
    """One symbol's strategy, fed bar by bar (the incremental form of the strategy)."""

    def __init__(
        self, symbol: str, strategy: str, params: dict[str, Any], code: list[Any] | None = None
    ) -> None:
        self.symbol = symbol
        if code:  # the user's strategy source, shipped with the actor (the file may not be here)
            from tape.store.strategy_loader import install_codes

            install_codes(code)
        self._strategy = make_strategy(strategy, params)
        self._live = self._strategy.live()
        self.bars = 0

    def on_bar(
        self, open: float, high: float, low: float, close: float, volume: float
    ) -> tuple[int, dict, str]:
        """(side, indicator values, reason) at this bar's close."""
        self.bars += 1
        side, values = self._live.on_bar(open, high, low, close, volume)
        return side, values, self._strategy.describe(side, values) if side else ""

    def warm(self, bars: list[tuple[float, float, float, float, float]]) -> int:
        """Feed history (open, high, low, close, volume) without deciding on it, in one call: a
        replaced actor catches up. Returns the bars seen so far."""
        on_bar = self._live.on_bar
        for bar in bars:
            on_bar(*bar)
        self.bars += len(bars)
        return self.bars

    def pid(self) -> int:
        """The worker process this actor lives in (logged, so an operator can find it)."""
        return os.getpid()

    def health(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "strategy": self._strategy.name, "bars": self.bars, "pid": os.getpid()}


class PortfolioActor:
    """Risk limits, orders and positions of the session; writes every decision before going on."""

    def __init__(
        self,
        config: BacktestConfig,
        run_id: str,
        strategy: str,
        writer: Any,
        monitor: MonitorConfig | None = None,
    ) -> None:
        self._session = TradingSession(config, run_id, strategy)
        self._writer = writer
        self._monitor = SessionMonitor(monitor, config.cash) if monitor is not None else None

    def process(self, group: list[dict[str, Any]]) -> int:
        """One timestamp: every symbol's bar and strategy side, in feed order. Returns events written."""
        session, out = self._session, []
        day_start = session.state.day_start_equity  # before this timestamp's mark moves it
        for bar in group:
            out += session.open_bar(bar["symbol"], bar["ts"], bar["open"], bar["high"], bar["low"])
            out += session.observe(
                bar["ts"], bar["symbol"], bar["high"], bar["low"], bar["close"], bar["volume"]
            )
            out += session.close_bar(
                bar["symbol"], bar["ts"], bar["day"], bar["close"], bar["side"], bar["values"], bar["reason"]
            )
            if bar["last"]:
                out += session.close_out(bar["symbol"], bar["ts"], bar["close"])
        last = group[-1]
        out += session.end_of_timestamp(last["ts"], session_end=last["session_end"])
        if self._monitor is not None:
            alerts = self._monitor.after_timestamp(
                out,
                ts=last["ts"],
                day=str(last["day"]),
                equity=session.equity,
                peak=session.peak,
                day_start_equity=day_start,
                reported=[b["symbol"] for b in group],
                ended=[b["symbol"] for b in group if b["last"]],
                marked=last["session_end"],
            )
            for alert in alerts:
                evolve(session.state, alert)  # the risk gate then knows the day's loss was alerted
            out += alerts
        if out:
            import ray

            ray.get(self._writer.append.remote(out))  # durable before the next bar is looked at
        return len(out)

    def pid(self) -> int:
        """The worker process this actor lives in."""
        return os.getpid()

    def resume(self, groups: list[tuple[list[dict[str, Any]], list[Event]]]) -> int:
        """Fold the timestamps a previous process decided: each (bars in feed order, the events the log
        holds for them). Returns the events folded."""
        session, folded = self._session, 0
        for group, written in groups:
            session.refold(
                [(b["symbol"], b["ts"], b["high"], b["low"], b["close"], b["volume"]) for b in group], written
            )
            if self._monitor is not None:
                self._monitor.refold(
                    written,
                    reported=[b["symbol"] for b in group],
                    ended=[b["symbol"] for b in group if b["last"]],
                )
            folded += len(written)
        return folded

    def status(self) -> dict[str, Any]:
        return self._session.snapshot()
