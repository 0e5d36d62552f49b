"""A session's strategies as Ray actors: one StrategyActor per symbol, replaced when one dies.

The PortfolioActor asks each symbol's StrategyActor for a decision (one Ray call per bar: live bars are
few). When an actor has died (killed, out of memory, its node gone) a new one is started, re-warmed on
every bar its predecessor was fed (``history(symbol)``: the warm-up window and the bars the log
recorded), and asked again, so the decision is the one the old actor would have made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tape.actors.alpaca.feed import LiveBar
from tape.actors.live_session import Decision, Restarted
from tape.actors.session_actors import StrategyActor

History = Callable[[str], list[LiveBar]]


def _ohlcv(bar: LiveBar) -> tuple[float, float, float, float, float]:
    return (bar.open, bar.high, bar.low, bar.close, bar.volume)


class RayStrategies:
    """StrategyActors of one session, with restart-and-rewarm on death."""

    def __init__(self, symbols: list[str], strategy: str, params: dict[str, Any]) -> None:
        import ray

        self._ray = ray
        self._strategy, self._params = strategy, params
        from tape.store.strategy_loader import codes_for

        self._code = codes_for(strategy, params)  # the user's source travels with each actor
        self._actors = {s: self._spawn(s) for s in symbols}
        self._pids: dict[str, int] = {}
        self._restarts = dict.fromkeys(symbols, 0)
        self._replaced: list[Restarted] = []
        self.history: History | None = None  # set by the session that owns the pool

    def _spawn(self, symbol: str) -> Any:
        # num_cpus=0: a strategy waits on the portfolio far more than it computes.
        actor = self._ray.remote(StrategyActor).options(num_cpus=0, max_restarts=0)
        return actor.remote(symbol, self._strategy, self._params, self._code)

    def warm(self, bars: list[LiveBar]) -> None:
        """Feed history to every symbol's actor (one call per actor)."""
        calls = [
            self._actors[s].warm.remote([_ohlcv(b) for b in bars if b.symbol == s]) for s in self._actors
        ]
        self._ray.get(calls)

    def decide(self, bar: LiveBar) -> Decision:
        """The symbol's decision at this bar's close; a dead actor is replaced and asked again."""
        from ray.exceptions import RayActorError

        handle = self._actors[bar.symbol]
        try:
            return tuple(self._ray.get(handle.on_bar.remote(*_ohlcv(bar))))  # type: ignore[return-value]
        except RayActorError as exc:
            cause = f"the actor died ({type(exc).__name__})"
        handle = self._replace(bar.symbol, cause)
        return tuple(self._ray.get(handle.on_bar.remote(*_ohlcv(bar))))  # type: ignore[return-value]

    def _replace(self, symbol: str, cause: str) -> Any:
        if self.history is None:
            raise RuntimeError("RayStrategies.history is not set: cannot re-warm a replaced actor")
        seen = self.history(symbol)
        handle = self._actors[symbol] = self._spawn(symbol)
        self._ray.get(handle.warm.remote([_ohlcv(b) for b in seen]))
        self._restarts[symbol] += 1
        pid = self._ray.get(handle.health.remote())["pid"]
        self._pids[symbol] = pid
        self._replaced.append(Restarted(symbol, pid, len(seen), cause))
        return handle

    def take_restarts(self) -> list[Restarted]:
        out, self._replaced = self._replaced, []
        return out

    def actors(self, timeout: float = 2.0) -> list[dict[str, Any]]:
        """Each actor's health: symbol, pid, alive, bars fed, restarts."""
        from ray.exceptions import GetTimeoutError, RayActorError

        out = []
        for symbol, handle in self._actors.items():
            row: dict[str, Any] = {"actor": "strategy", "symbol": symbol, "restarts": self._restarts[symbol]}
            try:
                health = self._ray.get(handle.health.remote(), timeout=timeout)
            except RayActorError:
                row.update(alive=False, pid=self._pids.get(symbol, 0))
            except GetTimeoutError:
                row.update(alive=True, pid=self._pids.get(symbol, 0), busy=True)
            else:
                self._pids[symbol] = health["pid"]
                row.update(alive=True, pid=health["pid"], bars=health["bars"])
            out.append(row)
        return out

    def kill(self) -> None:
        """Stop every actor of the pool (the session is going away)."""
        for handle in self._actors.values():
            self._ray.kill(handle)
