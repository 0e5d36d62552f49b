"""The live engine: a named, detached Ray actor that runs spawned (symbol, strategy) sessions on schedule.

`tape up` starts it; `tape spawn/stop/status/down` reach it from any shell (cli/engine_cmds.py). Each
session has its own run in the log, its own PortfolioActor (actors/live_portfolio.py, which owns the
session's StrategyActors) and a scheduler thread (actors/session_runner.py). The engine supervises:

- a PortfolioActor that dies (or a cycle that fails) is replaced by a new one that rebuilds from the log,
  and the cycle it was running is run again;
- a StrategyActor that dies is replaced by its PortfolioActor (actors/strategy_pool.py);
- the engine itself is restarted by Ray (``max_restarts=-1``); its actors die with it and the new engine
  resumes every session spawned and not stopped, which it reads from the ``engine`` stream of the log
  (SessionSpawned / SessionStopped): what the engine runs is auditable like everything else; so are
  the options each `tape up` started it with (EngineConfigured), which the next plain `tape up` reuses;
- with ``--feed alpaca-stream`` one MarketDataActor (actors/market_data.py) holds the account's one
  market-data connection for every session; Ray restarts it the same way (``max_restarts=-1``), and
  meanwhile the sessions read their bars over REST.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from tape.actors.engine_spec import ENGINE_STREAM, EngineOptions, SessionSpec, engine_clock
from tape.actors.live_session import live_run_id
from tape.actors.market_data import CALL_TIMEOUT_S, FEEDS, MARKET_DATA_NAME, STREAMING_FEED, MarketDataActor
from tape.actors.ray_calls import describe_error, ray_get, retire_actor
from tape.actors.schedule import parse_interval
from tape.actors.session_runner import SessionRunner
from tape.events.backtest import BacktestConfig
from tape.events.errors import ConfigError, TapeError
from tape.events.monitor import MonitorConfig
from tape.events.schema import (
    ActorStarted,
    ActorStopped,
    Alert,
    EngineConfigured,
    Event,
    SessionSpawned,
    SessionStopped,
)
from tape.events.strategies import make_strategy
from tape.events.streams import route_of
from tape.store.credentials import load_alpaca_credentials
from tape.store.log import ConcurrencyConflict, EventLog

ENGINE_NAME = "tape-engine"


class Engine:
    """The detached engine actor (threaded: status and spawn are served while sessions trade)."""

    def __init__(self, options: EngineOptions) -> None:
        import ray

        self.options = options
        if options.broker != "alpaca" or options.feed not in FEEDS:
            raise ConfigError(f"the engine trades with --broker alpaca --feed {'|'.join(FEEDS)}")
        self.clock = engine_clock(options)
        self._lock = threading.RLock()
        self._log = EventLog.create(options.log_path, durable=True)
        self._runners: dict[tuple[str, str], SessionRunner] = {}
        self._down = False
        reconstructed = ray.get_runtime_context().was_current_actor_reconstructed
        self.restarts = sum(
            1
            for e in self._log.events(stream=ENGINE_STREAM, kinds=["actor_started"])
            if isinstance(e, ActorStarted) and e.actor == "engine" and e.detail.startswith("restarted")
        ) + int(reconstructed)
        how = f"feed {options.feed}, clock {options.clock}"
        self._record(
            ActorStarted(
                ts=self.clock.now_ns(),
                actor="engine",
                detail=f"restarted after the engine process died; {how}" if reconstructed else f"up; {how}",
                pid=os.getpid(),
            )
        )
        if not reconstructed:  # what `tape up` chose; a restart by Ray runs with the same options
            self._record(
                EngineConfigured(
                    ts=self.clock.now_ns(), broker=options.broker, feed=options.feed, clock=options.clock
                )
            )
        self.notify_channels = _channel_names(options)
        self._market_data = _start_market_data(options)  # before the sessions: they read through it
        self._resumed = threading.Thread(target=self._resume, name="engine-resume", daemon=True)
        self._resumed.start()

    # ------------------------------------------------------------------ the engine stream

    def _record(self, event: Event) -> None:
        """Append to the ``engine`` stream (durable; optimistic concurrency against a stale engine)."""
        with self._lock:
            for _ in range(3):
                try:
                    version = self._log.stream_version(ENGINE_STREAM)
                    self._log.append(ENGINE_STREAM, [event], expected_version=version, durable=True)
                    return
                except ConcurrencyConflict:
                    continue
            raise TapeError("another engine keeps writing this log's engine stream")

    def _spawned(self) -> list[SessionSpawned]:
        """Sessions spawned and not stopped since, in spawn order."""
        live: dict[tuple[str, str], SessionSpawned] = {}
        with self._lock:
            events = list(self._log.events(stream=ENGINE_STREAM))
        for event in events:
            if isinstance(event, SessionSpawned):
                live[(event.symbol, event.strategy)] = event
            elif isinstance(event, SessionStopped):
                live.pop((event.symbol, event.strategy), None)
        return list(live.values())

    def _resume(self) -> None:
        for event in self._spawned():
            spec = SessionSpec(
                symbol=event.symbol,
                strategy=event.strategy,
                interval=event.interval,
                days_back=event.days_back,
                config=msgspec.convert(event.config, BacktestConfig),
                trade_updates=event.trade_updates,
                monitor=None if event.monitor is None else msgspec.convert(event.monitor, MonitorConfig),
            )
            runner = SessionRunner(self, spec, event.run_id, event.ts)
            runner._detail = "resumed by the engine"
            with self._lock:
                self._runners[spec.key] = runner
            runner.launch()
        for runner in list(self._runners.values()):
            runner.started.wait(120)

    # ------------------------------------------------------------------ commands

    def ready(self) -> dict[str, Any]:
        """Wait until the sessions of the log are resumed (started, or failed once); who and where."""
        self._resumed.join()
        resumed = [f"{symbol} {strategy}" for symbol, strategy in self._runners]
        return {
            "pid": os.getpid(),
            "resumed": resumed,
            "restarts": self.restarts,
            "feed": self.options.feed,
            "clock": self.options.clock,
        }

    def spawn(self, spec: SessionSpec) -> dict[str, Any]:
        """Start a session (or resume its run when the same config traded before); errors raise."""
        from tape.store.strategy_loader import codes_for, install_codes

        # Shipped with the spawn; a session resumed from the log reloads the file it names (same hash).
        install_codes(list(spec.code) or codes_for(spec.config.strategy, spec.config.params))
        make_strategy(spec.config.strategy, spec.config.params)
        parse_interval(spec.interval)
        credentials = load_alpaca_credentials(
            dotenv_path=None if not self.options.dotenv else Path(self.options.dotenv)
        )
        run_id = live_run_id(spec.config, credentials.base_url)
        with self._lock:
            if self._down:
                raise TapeError("the engine is shutting down")
            if spec.key in self._runners:
                raise ConfigError(f"{spec.symbol} {spec.strategy} is already running (run {run_id})")
            runner = SessionRunner(self, spec, run_id, self.clock.now_ns())
            self._runners[spec.key] = runner
        try:
            status = runner.start_portfolio("spawned")
        except BaseException:
            with self._lock:
                del self._runners[spec.key]
            raise
        runner.started.set()
        self._record(
            SessionSpawned(
                ts=runner.since_ns,
                run_id=run_id,
                symbol=spec.symbol,
                strategy=spec.strategy,
                interval=spec.interval,
                days_back=spec.days_back,
                config=msgspec.to_builtins(spec.config),
                trade_updates=spec.trade_updates,
                monitor=None if spec.monitor is None else msgspec.to_builtins(spec.monitor),
            )
        )
        runner.launch()
        return {"run_id": run_id, "resumed": status["cycles"] > 0, "symbol": spec.symbol}

    def strategy_failed(self, runner: SessionRunner, message: str) -> None:
        """Log that ``runner``'s strategy raised: a critical alert on its run and the session's stop
        (so `tape up` does not resume it until it is spawned again)."""
        now = self.clock.now_ns()
        with self._lock:
            if self._runners.get(runner.spec.key) is runner:
                del self._runners[runner.spec.key]
        symbol, strategy = runner.spec.key
        alert = Alert(
            ts=now,
            rule="strategy_error",
            severity="critical",
            message=f"{symbol} {strategy} stopped: {message}",
            symbol=symbol,
            day=str(np.datetime64(now, "ns"))[:10],
        )
        stream = route_of(runner.run_id, alert)
        with self._lock:
            self._log.append(stream, [alert], expected_version=self._log.stream_version(stream), durable=True)
        self._record(
            SessionStopped(ts=now, run_id=runner.run_id, symbol=symbol, strategy=strategy, reason=message)
        )

    def stop(self, symbol: str, strategy: str) -> dict[str, Any]:
        """Stop one session: its cycle in flight finishes, it reconciles and logs the stop."""
        with self._lock:
            runner = self._runners.pop((symbol, strategy), None)
        if runner is None:
            running = ", ".join(f"{s} {t}" for s, t in self._runners) or "none"
            raise ConfigError(f"no session {symbol} {strategy} is running (running: {running})")
        runner.stop("tape stop")
        self._record(
            SessionStopped(
                ts=self.clock.now_ns(),
                run_id=runner.run_id,
                symbol=symbol,
                strategy=strategy,
                reason="tape stop",
            )
        )
        self._unsubscribe_unread(runner.spec.config.symbols)
        return {"run_id": runner.run_id, "cycles": runner.status.get("cycles", 0)}

    def _unsubscribe_unread(self, symbols: list[str]) -> None:
        """Drop from the shared stream those of a stopped session's ``symbols`` no running session
        reads, so the subscription follows what the engine trades rather than all it ever traded."""
        from ray.exceptions import GetTimeoutError, RayActorError

        if self._market_data is None:
            return
        # Under the lock: a spawn registers its runner under it before its warm-up subscribes, so a
        # symbol a new session needs is never dropped after it was subscribed for that session.
        with self._lock:
            read = {s for runner in self._runners.values() for s in runner.spec.config.symbols}
            unread = sorted(set(symbols) - read)
            if not unread:
                return
            # A down or hung actor must not hold up the stop; a restarted one starts with nothing.
            with contextlib.suppress(RayActorError, GetTimeoutError):
                ray_get(self._market_data.unsubscribe.remote(unread), timeout=CALL_TIMEOUT_S)

    def notification_health(self, run_id: str) -> dict[str, Any]:
        """Delivery health of a session's notifications, from its run's notify stream."""
        from tape.store.period_report import run_notification_health

        with self._lock:
            return run_notification_health(self._log, run_id)

    def status(self) -> dict[str, Any]:
        """The engine and every session (see :meth:`SessionRunner.describe`)."""
        with self._lock:
            runners = list(self._runners.values())
        return {
            "engine": {
                "pid": os.getpid(),
                "restarts": self.restarts,
                "clock": self.options.clock,
                "now": self.clock.now_ns(),
                "log": self.options.log_path,
                "broker": self.options.broker,
                "feed": self.options.feed,
                "notify": self.notify_channels,
            },
            "market_data": self._market_data_status(),
            "sessions": [r.describe() for r in runners],
        }

    def _market_data_status(self) -> dict[str, Any] | None:
        """The shared stream's actor for `tape status` (None with the REST feed)."""
        from ray.exceptions import GetTimeoutError, RayActorError

        if self._market_data is None:
            return None
        try:
            return dict(ray_get(self._market_data.status.remote(), timeout=5.0))
        except (RayActorError, GetTimeoutError) as exc:
            return {"actor": "market_data", "alive": False, "error": describe_error(exc)}

    def shutdown(self) -> dict[str, Any]:
        """`tape down`: no new cycles or orders, every session stops after its cycle in flight and logs
        it. Sessions stay spawned in the log, so the next `tape up` resumes them."""
        with self._lock:
            self._down = True
            runners = list(self._runners.values())
            self._runners.clear()
        for runner in runners:
            runner.stop("tape down")
        _stop_market_data(self._market_data)
        self._record(ActorStopped(ts=self.clock.now_ns(), actor="engine", reason="tape down"))
        with self._lock:
            self._log.close()
        return {"stopped": [f"{r.spec.symbol} {r.spec.strategy}" for r in runners]}


def last_configured(log: EventLog) -> EngineConfigured | None:
    """The options the log's engine was last started with (None: it never was)."""
    for event in log.events(stream=ENGINE_STREAM, kinds=["engine_configured"], descending=True, limit=1):
        return event if isinstance(event, EngineConfigured) else None
    return None


def _channel_names(options: EngineOptions) -> list[str]:
    """The notification channels the environment or `.env` of `tape up` configures (`tape up` has
    checked them; each session's PortfolioActor runs its own notifier with them)."""
    from tape.actors.notify_channels import channels_from_env
    from tape.store.credentials import load_env

    try:
        channels, _ = channels_from_env(load_env(Path(options.dotenv) if options.dotenv else None))
    except ConfigError:
        return []
    return [c.name for c in channels]


def _start_market_data(options: EngineOptions) -> Any:
    """The MarketDataActor of a streaming engine (None for the REST feed). Like the engine, Ray restarts
    it when its process dies; it is the engine's own actor, so it goes when the engine does."""
    import ray

    if options.feed != STREAMING_FEED:
        return None
    retire_actor(MARKET_DATA_NAME)  # a predecessor must not hold Alpaca's one connection beside the new one
    return (
        ray.remote(MarketDataActor)
        .options(name=MARKET_DATA_NAME, num_cpus=0, max_restarts=-1, max_concurrency=16)
        .remote(options)
    )


def _stop_market_data(handle: Any) -> None:
    """Close the streams (logged), then end the actor for good."""
    import ray
    from ray.exceptions import GetTimeoutError, RayActorError

    if handle is None:
        return
    with contextlib.suppress(RayActorError, GetTimeoutError):  # dead or hung: the kill closes it too
        ray_get(handle.close.remote(), timeout=30.0)
    ray.kill(handle, no_restart=True)
