"""Running a trading session on Ray actors: the replay feed, the simulated broker, the log.

`tape trade ... --broker sim --feed replay` calls :func:`run_replay_session`: stored bars are played
(at ``speed`` times real time, 0 = as fast as possible) through one StrategyActor per symbol and the
PortfolioActor, whose decisions the LogWriter appends to the log.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from tape.actors.jobs import ensure_ray, shipped_code
from tape.actors.session_actors import LogWriter, PortfolioActor, StrategyActor
from tape.events.backtest import BacktestConfig, run_ended, run_started
from tape.events.bars import BarSeries
from tape.events.monitor import MonitorConfig, actor_dead_alert
from tape.events.schema import ActorStarted, RunEnded
from tape.events.session import feed_order
from tape.events.strategies import make_strategy
from tape.store.backtests import code_version

Progress = Callable[[int, int], None]


def session_run_id(mode: str, config: BacktestConfig, series: Sequence[BarSeries]) -> str:
    """Content id of a replayed session (same mode, config, data and code: same id)."""
    payload = msgspec.msgpack.encode([mode, config, [s.fingerprint() for s in series], code_version()])
    return hashlib.sha256(payload).hexdigest()[:16]


def run_replay_session(
    config: BacktestConfig,
    series: Sequence[BarSeries],
    *,
    log_path: Path,
    speed: float = 0.0,
    address: str | None = None,
    progress: Progress | None = None,
    monitor: MonitorConfig | None = None,
    on_run: Callable[[str], None] | None = None,
) -> str:
    """Play ``series`` through the session's actors; returns the run id (already complete in the log).

    ``monitor`` turns on the alert rules (events/monitor.py) in the portfolio actor; ``on_run(run_id)``
    is called once the run is opened in the log (a notifier starts following its alerts then). A
    strategy actor that dies is reported (``actor_dead`` alert), replaced and re-warmed on the bars it
    had seen, so the session goes on with the same decisions.
    """
    ray = ensure_ray(address)
    strategy = make_strategy(config.strategy, config.params)
    code = shipped_code(config)
    run_id = session_run_id("sim", config, series)
    writer = ray.remote(LogWriter).remote(str(log_path), run_id, False)
    stored = ray.get(writer.append.remote([]))
    if stored:
        return run_id  # an identical session is already in the log
    opening = run_started(
        config, series, run_id=run_id, mode="sim", code_version=code_version(), label="broker=sim feed=replay"
    )
    ray.get(writer.append.remote([opening]))
    if on_run is not None:
        on_run(run_id)

    try:

        def spawn(symbol: str) -> Any:
            return ray.remote(StrategyActor).remote(symbol, config.strategy, strategy.param_dict(), code)

        actors = {s.symbol: spawn(s.symbol) for s in series}
        portfolio = ray.remote(PortfolioActor).remote(config, run_id, strategy.name, writer, monitor)
        pids = ray.get([a.pid.remote() for a in actors.values()])
        ray.get(
            writer.append.remote(
                [
                    ActorStarted(
                        ts=opening.ts,
                        actor="strategy",
                        symbol=symbol,
                        strategy=strategy.name,
                        detail=f"pid {pid}",
                    )
                    for symbol, pid in zip(actors, pids, strict=True)
                ]
            )
        )
        seen = dict.fromkeys(actors, 0)  # bars each strategy actor has been fed (what a replacement replays)
        by_symbol = {s.symbol: s for s in series}
        steps = feed_order(list(series))
        group: list[Any] = []
        started, first_ts = time.monotonic(), steps[0].ts if steps else 0
        for n, step in enumerate(steps, start=1):
            group.append(step)
            if not step.group_end:
                continue
            if speed > 0:  # wait until this timestamp is due at `speed` times real time
                due = (step.ts - first_ts) / 1e9 / speed
                time.sleep(max(0.0, due - (time.monotonic() - started)))
            bars = []
            for item in group:
                s, i = by_symbol[item.symbol], item.row
                bars.append(
                    {
                        "symbol": item.symbol,
                        "ts": item.ts,
                        "day": item.day,
                        "open": float(s.open[i]),
                        "high": float(s.high[i]),
                        "low": float(s.low[i]),
                        "close": float(s.close[i]),
                        "volume": float(s.volume[i]),
                        "last": item.last_of_symbol,
                        "session_end": item.session_end,
                    }
                )
            decided = _decide(ray, actors, bars)
            for k, bar in enumerate(bars):
                if (
                    decided[k] is None
                ):  # the actor died: alert, replace it, replay what it had seen, ask again
                    symbol = bar["symbol"]
                    ray.get(
                        writer.append.remote(
                            [actor_dead_alert(bar["ts"], str(bar["day"]), "strategy", symbol)]
                        )
                    )
                    actors[symbol] = _replace(
                        ray, spawn(symbol), by_symbol[symbol], seen[symbol], bar, writer
                    )
                    decided[k] = ray.get(
                        actors[symbol].on_bar.remote(
                            bar["open"], bar["high"], bar["low"], bar["close"], bar["volume"]
                        )
                    )
            for bar in bars:
                seen[bar["symbol"]] += 1
            for bar, (side, values, reason) in zip(bars, decided, strict=True):
                bar.update(side=side, values=values, reason=reason)
            ray.get(portfolio.process.remote(bars))
            group = []
            if progress is not None:
                progress(n, len(steps))
        ray.get(writer.append.remote([run_ended(series, run_id=run_id, ts=steps[-1].ts, bars=len(steps))]))
    except Exception as exc:
        from tape.store.strategy_loader import as_user_error

        mine = as_user_error(exc)
        if mine is None:
            raise
        # The user's code broke the session: the run ends failed, with their error, and nothing else.
        failed = RunEnded(ts=opening.ts, run_id=run_id, status="failed", message=str(mine))
        ray.get(writer.append.remote([failed]))
        raise mine from None
    ray.get(writer.close.remote())
    for handle in (*actors.values(), portfolio, writer):
        ray.kill(handle)
    return run_id


def _replace(ray: Any, actor: Any, s: BarSeries, bars_seen: int, bar: dict[str, Any], writer: Any) -> Any:
    """Warm a replacement strategy actor up on the ``bars_seen`` bars its predecessor had and log it."""
    history = [
        (float(s.open[i]), float(s.high[i]), float(s.low[i]), float(s.close[i]), float(s.volume[i]))
        for i in range(bars_seen)
    ]
    ray.get(actor.warm.remote(history))
    pid = ray.get(actor.pid.remote())
    health = ray.get(actor.health.remote())
    started = ActorStarted(
        ts=bar["ts"],
        actor="strategy",
        symbol=s.symbol,
        strategy=health["strategy"],
        events_folded=len(history),
        detail=f"pid {pid}; replaced a dead actor, re-warmed on {len(history)} bars",
    )
    ray.get(writer.append.remote([started]))
    return actor


def _decide(ray: Any, actors: dict[str, Any], bars: list[dict[str, Any]]) -> list[Any]:
    """Each bar's (side, values, reason) from its symbol's actor; None where the actor has died."""
    from ray.exceptions import RayActorError

    futures = [
        actors[b["symbol"]].on_bar.remote(b["open"], b["high"], b["low"], b["close"], b["volume"])
        for b in bars
    ]
    try:
        return list(ray.get(futures))
    except RayActorError:
        pass
    answers: list[Any] = []
    for future in futures:
        try:
            answers.append(ray.get(future))
        except RayActorError:
            answers.append(None)
    return answers
