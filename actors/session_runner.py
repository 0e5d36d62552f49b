"""One spawned session of the live engine: its scheduler thread and the supervision of its
PortfolioActor (replaced, rebuilt from the log, when it dies or a cycle fails)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import msgspec

from tape.actors.engine_spec import SessionSpec
from tape.actors.ray_calls import describe_error, error_cause, ray_get, retire_actor
from tape.actors.schedule import is_crypto, next_run, parse_interval

if TYPE_CHECKING:
    from tape.actors.live_engine import Engine

MAX_BACKOFF_S = 30.0


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
        retire_actor(name)  # a predecessor still shutting down must not write the run beside the new one
        handle = (
            ray.remote(LivePortfolioActor)
            .options(name=name, num_cpus=0, max_restarts=0, max_concurrency=2)
            .remote(self._engine.options, self.spec, self.run_id)
        )
        try:
            status = ray.get(handle.start.remote(self._engine.clock.now_ns(), detail))
        except BaseException as exc:
            ray.kill(handle)
            raise error_cause(exc) from None
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
                    self.last_error = describe_error(exc)
                    self.started.set()
                    self._stopping.wait(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_S)
                    continue
                self.started.set()
                backoff = 0.5
            self.next_due = due = self._next_due()
            if not self._wait_until(due):
                break
            try:
                result = ray_get(self._portfolio.run_cycle.remote(due))
            except RayActorError:
                self._drop_portfolio("the portfolio actor died")
                continue
            except Exception as exc:  # a cycle failed inside the actor: rebuild it from the log
                if self._strategy_failed(exc):
                    break
                self.last_error = describe_error(exc)
                self._drop_portfolio(f"a failed cycle: {self.last_error}")
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
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
        poll = clock.poll_s
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
                health = ray_get(handle.health.remote(), timeout=5.0)
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
