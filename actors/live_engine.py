"""The live engine: a named, detached Ray actor that runs spawned (symbol, strategy) sessions on schedule.

`tape up` starts it; `tape spawn/stop/status/down` reach it from any shell (cli/engine_cmds.py). Each
session has its own run in the log, its own PortfolioActor (actors/live_portfolio.py, which owns the
session's StrategyActors) and a scheduler thread here. The engine supervises:

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
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from tape.actors.engine_spec import ENGINE_STREAM, EngineOptions, SessionSpec, engine_clock
from tape.actors.live_session import live_run_id
from tape.actors.market_data import CALL_TIMEOUT_S, FEEDS, MARKET_DATA_NAME, STREAMING_FEED, MarketDataActor
from tape.actors.schedule import is_crypto, next_run, parse_interval
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
_MAX_BACKOFF_S = 30.0


class SessionRunner:
    """One session's scheduler thread and the supervision of its PortfolioActor."""

    def __init__(self, engine: Engine, spec: SessionSpec, run_id: str, since_ns: int) -> None:
        self.spec, self.run_id = spec, run_id
        self.since_ns = since_ns  # when the session was spawned: the schedule counts from there
        self._engine = engine
        self._interval_s = parse_interval(spec.interval)
        self._crypto = is_crypto(spec.symbol)
        self._portfolio: Any = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._detail = "started"
        self.started = threading.Event()  # set once the first start succeeded or failed
        self.restarts = 0
        self.last_error = ""
        self.next_due = 0
        self.last_cycle_ts = 0
        self.status: dict[str, Any] = {}

    # ------------------------------------------------------------------ the PortfolioActor

    def start_portfolio(self, detail: str) -> dict[str, Any]:
        """Create the session's PortfolioActor and let it rebuild from the log; raises what went wrong."""
        import ray

        from tape.actors.live_portfolio import LivePortfolioActor

        name = f"portfolio:{self.run_id}"
        _retire(name)  # a predecessor still shutting down must not write the run beside the new one
        handle = (
            ray.remote(LivePortfolioActor)
            .options(name=name, num_cpus=0, max_restarts=0, max_concurrency=2)
            .remote(self._engine.options, self.spec, self.run_id)
        )
        try:
            status = ray.get(handle.start.remote(self._engine.clock.now_ns(), detail))
        except BaseException as exc:
            ray.kill(handle)
            raise _cause(exc) from None
        self._portfolio = handle
        self.status, self.last_cycle_ts = status, status["last_cycle_ts"]
        self.last_error = ""
        return status

    def _drop_portfolio(self, why: str) -> None:
        import ray

        if self._portfolio is not None:
            ray.kill(self._portfolio)
        self._portfolio = None
        self.restarts += 1
        self._detail = f"restarted after {why}"

    # ------------------------------------------------------------------ the schedule

    def launch(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"session-{self.spec.symbol}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        from ray.exceptions import RayActorError

        backoff = 0.5
        while not self._stopping.is_set():
            if self._portfolio is None:
                try:
                    self.start_portfolio(self._detail)
                except Exception as exc:
                    if self._strategy_failed(exc):
                        break
                    self.last_error = _describe(exc)
                    self.started.set()
                    self._stopping.wait(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF_S)
                    continue
                self.started.set()
                backoff = 0.5
            self.next_due = due = self._next_due()
            if not self._wait_until(due):
                break
            try:
                result = _get(self._portfolio.run_cycle.remote(due))
            except RayActorError:
                self._drop_portfolio("the portfolio actor died")
                continue
            except Exception as exc:  # a cycle failed inside the actor: rebuild it from the log
                if self._strategy_failed(exc):
                    break
                self.last_error = _describe(exc)
                self._drop_portfolio(f"a failed cycle: {self.last_error}")
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
                continue
            self.status, self.last_cycle_ts = result["status"], due
            backoff = 0.5

    def _strategy_failed(self, exc: BaseException) -> bool:
        """When the user's strategy raised: this session alone stops (restarting would raise again),
        with the reason logged and a critical alert; the engine's other sessions go on."""
        from tape.store.strategy_loader import as_user_error

        mine = as_user_error(exc)
        if mine is None:
            return False
        self.last_error = str(mine)
        self._stopping.set()
        if self._portfolio is not None:
            import ray

            ray.kill(self._portfolio)
            self._portfolio = None
        self.started.set()
        self._engine.strategy_failed(self, str(mine))
        return True

    def _next_due(self) -> int:
        """The next aligned cycle in a session; a cycle missed while an actor or the engine was down
        (the last logged cycle is one interval or more behind) runs at once."""
        clock, step = self._engine.clock, self._interval_s
        now = clock.now_ns()
        last = self.last_cycle_ts or self.since_ns
        if last:
            missed = next_run(last, step, crypto=self._crypto)
            if missed <= now < next_run(missed, step, crypto=self._crypto):
                return missed
        return next_run(now, step, crypto=self._crypto)

    def _wait_until(self, due: int) -> bool:
        clock = self._engine.clock
        poll = getattr(clock, "poll_s", 1.0)
        while not self._stopping.is_set():
            left = (due - clock.now_ns()) / 1e9
            if left <= 0:
                return True
            self._stopping.wait(min(left, poll))
        return False

    def stop(self, reason: str) -> None:
        """Finish the cycle in flight, then stop the portfolio (it reconciles and logs the stop)."""
        import ray

        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        if self._portfolio is not None:
            try:
                ray.get(self._portfolio.stop.remote(self._engine.clock.now_ns(), reason))
            finally:
                ray.kill(self._portfolio)
                self._portfolio = None

    # ------------------------------------------------------------------ status

    def describe(self) -> dict[str, Any]:
        """The session for `tape status`: actors and their health, positions, P&L, decisions, schedule."""
        from ray.exceptions import GetTimeoutError, RayActorError

        portfolio: dict[str, Any] = {"actor": "portfolio", "alive": False, "pid": 0}
        portfolio["restarts"] = self.restarts
        strategies: list[dict[str, Any]] = []
        status = self.status
        handle = self._portfolio
        if handle is not None:
            try:
                health = _get(handle.health.remote(), timeout=5.0)
            except (RayActorError, GetTimeoutError):
                pass
            else:
                portfolio.update(alive=True, pid=health["pid"])
                strategies = health["strategies"]
                status = health["status"] or status
        positions = {
            symbol: {**p, "unrealized_pnl": (p["last"] - p["entry_price"]) * p["qty"] if p["last"] else 0.0}
            for symbol, p in status.get("positions", {}).items()
        }
        return {
            "symbol": self.spec.symbol,
            "strategy": self.spec.strategy,
            "run_id": self.run_id,
            "interval": self.spec.interval,
            "trade_updates": self.spec.trade_updates,
            "state": "running" if portfolio["alive"] else ("failing" if self.last_error else "starting"),
            "next_run": self.next_due,
            "last_cycle": self.last_cycle_ts,
            "cycles": status.get("cycles", 0),
            "orders_sent": status.get("orders_sent", 0),
            "restarts": self.restarts,
            "last_error": self.last_error,
            "actors": [portfolio, *strategies],
            "cash": status.get("cash"),
            "equity": status.get("equity"),
            "realized_pnl": status.get("realized_pnl", 0.0),
            "unrealized_pnl": sum(p["unrealized_pnl"] for p in positions.values()),
            "positions": positions,
            "last_decision": status.get("last_decision", {}),
            "feed": status.get("feed", {}),  # windows from the stream / over REST (streaming feed)
            "monitor": None if self.spec.monitor is None else msgspec.to_builtins(self.spec.monitor),
            "notifications": self._engine.notification_health(self.run_id),
        }


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
                _get(self._market_data.unsubscribe.remote(unread), timeout=CALL_TIMEOUT_S)

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
            return dict(_get(self._market_data.status.remote(), timeout=5.0))
        except (RayActorError, GetTimeoutError) as exc:
            return {"actor": "market_data", "alive": False, "error": _describe(exc)}

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
    from tape.actors.notifier import channels_from_env
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
    _retire(MARKET_DATA_NAME)  # a predecessor must not hold Alpaca's one connection beside the new one
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
        _get(handle.close.remote(), timeout=30.0)
    ray.kill(handle, no_restart=True)


def _get(ref: Any, timeout: float | None = None) -> Any:
    import ray

    return ray.get(ref, timeout=timeout)


def _cause(exc: BaseException) -> BaseException:
    """The user-facing error inside a Ray task error (a TapeError raised in an actor), else ``exc``."""
    from ray.exceptions import RayTaskError

    if isinstance(exc, RayTaskError) and isinstance(exc.cause, TapeError):
        return exc.cause
    return exc


def _describe(exc: BaseException) -> str:
    cause = _cause(exc)
    if isinstance(cause, TapeError):
        return str(cause)
    return f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"[:300]


def _retire(name: str, timeout_s: float = 30.0) -> None:
    """Kill the actor registered under ``name`` (if any) and wait until the name is free."""
    import ray

    try:
        old = ray.get_actor(name)
    except ValueError:
        return
    ray.kill(old, no_restart=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            ray.get_actor(name)
        except ValueError:
            return
        time.sleep(0.05)  # polling the name registry: Ray offers no wait for an actor's death
    raise TapeError(f"the old actor {name} did not go away within {timeout_s:g} s")
