"""The PortfolioActor of one live session: risk limits, the log, and the only path to the broker.

It hosts the session's LiveSession (the same portfolio core as a backtest) and owns its StrategyActors.
Started fresh or after a crash, it rebuilds everything from the log (:meth:`LiveSession.start`: fold,
re-warm, re-send working orders under their logged ids, reconcile with the broker), so killing it at any
moment loses nothing and never places an order twice.

When the environment (or the `.env`) of `tape up` configures a notification channel, the actor also runs
the session's notifier (actors/notifier.py) in catch-up mode: whatever the run's notify stream does not
show as delivered or given up is sent by the next actor, so no alert is lost to a restart or sent twice
(short of a crash between a delivery and its NotificationSent).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tape.actors.alpaca.broker import AlpacaBroker
from tape.actors.engine_spec import EngineOptions, SessionSpec
from tape.actors.live_session import LiveSession
from tape.actors.market_data import session_feed
from tape.actors.notifier import Notifier
from tape.actors.notify_channels import channels_from_env
from tape.actors.strategy_pool import RayStrategies
from tape.store.credentials import load_alpaca_credentials, load_env


class LivePortfolioActor:
    """One session's portfolio; the engine calls :meth:`start`, then :meth:`run_cycle` on schedule."""

    def __init__(self, options: EngineOptions, spec: SessionSpec, run_id: str) -> None:
        dotenv = Path(options.dotenv) if options.dotenv else None
        credentials = load_alpaca_credentials(dotenv_path=dotenv)
        config = spec.config
        self._strategies = RayStrategies(config.symbols, config.strategy, config.params)
        self._broker = AlpacaBroker(credentials, trade_updates=spec.trade_updates)
        on_off = "on" if spec.trade_updates else "off"
        self._updates = f"trade updates {on_off}"
        self._session = LiveSession(
            config,
            run_id=run_id,
            broker=self._broker,
            feed=session_feed(options, credentials, config.timeframe),
            log_path=Path(options.log_path),
            strategies=self._strategies,
            label=f"engine broker={options.broker} feed={options.feed} interval={spec.interval} "
            f"trade_updates={on_off}",
            trade_logs=Path(options.workdir) if options.workdir else None,
            monitor=spec.monitor,
        )
        self._run_id = run_id
        channels, settings = channels_from_env(load_env(dotenv))
        self._notifier = Notifier(Path(options.log_path), channels, settings) if channels else None
        self._strategies.history = self._session.bars_seen
        self._days_back = spec.days_back
        self._status: dict[str, Any] = {}

    def start(self, now_ns: int, detail: str) -> dict[str, Any]:
        """Open or resume the run (fold, warm up, re-send working orders, reconcile); its status."""
        self._session.start(now_ns, self._days_back, detail=f"{detail}; {self._updates}")
        if self._notifier is not None:
            self._notifier.follow(self._run_id, catch_up=True)
        return self._refresh()

    def run_cycle(self, now_ns: int) -> dict[str, Any]:
        """One scheduled cycle; the report and the status after it."""
        report = self._session.run_cycle(now_ns)
        return {"report": report._asdict(), "status": self._refresh()}

    def stop(self, now_ns: int, reason: str) -> None:
        """Reconcile, log the stop and let the strategy actors go; working orders stay at the broker."""
        try:
            self._session.stop(now_ns, reason=reason)
        finally:
            if self._notifier is not None:
                # Deliveries pending finish (at most TAPE_NOTIFY_DRAIN seconds); what a dead server
                # keeps back is left to the run's next notifier (`tape up`, `tape spawn`), not given up.
                self._notifier.close(give_up=False)
            self._broker.close()  # the trade-update stream: cancelled, not waited out
            self._strategies.kill()

    def health(self) -> dict[str, Any]:
        """pid, the status after the last cycle, and each strategy actor's health (runs beside a cycle)."""
        return {"pid": os.getpid(), "status": self._status, "strategies": self._strategies.actors()}

    def _refresh(self) -> dict[str, Any]:
        status = self._session.status()
        status.pop("config", None)
        windows = getattr(self._session.feed, "windows", None)  # the streaming feed counts its sources
        if windows is not None:
            status["feed"] = dict(windows)
        self._status = status  # replaced whole: health() may read it from another thread
        return status
