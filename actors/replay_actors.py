"""The strategy actors of a replayed session: started or warmed to where the log stands, asked for
each bar's decision, and replaced (re-warmed, logged) when one dies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tape.events.bars import BarSeries
from tape.events.monitor import actor_dead_alert
from tape.events.schema import ActorStarted, Event


def bar_history(s: BarSeries, n: int) -> list[tuple[float, float, float, float, float]]:
    """The first ``n`` bars of ``s`` as (open, high, low, close, volume): what warms an actor up."""
    return [
        (float(s.open[i]), float(s.high[i]), float(s.low[i]), float(s.close[i]), float(s.volume[i]))
        for i in range(n)
    ]


def start_actors(
    ray: Any,
    actors: dict[str, Any],
    portfolio: Any,
    decided: list[list[dict[str, Any]]],
    written: list[list[Event]],
    by_symbol: dict[str, BarSeries],
    seen: dict[str, int],
    strategy_name: str,
) -> list[Event]:
    """Bring the actors to where the log stands (nothing to do for a new run) and say so in events."""
    out: list[Event] = []
    if decided:
        folded = ray.get(portfolio.resume.remote(list(zip(decided, written, strict=True))))
        out.append(
            ActorStarted(
                ts=0,
                actor="portfolio",
                strategy=strategy_name,
                events_folded=folded,
                detail=f"resumed after {sum(len(g) for g in decided)} bars decided",
                pid=ray.get(portfolio.pid.remote()),
            )
        )
    warmed = []
    for symbol, actor in actors.items():
        s = by_symbol[symbol]
        history = bar_history(s, seen[symbol])
        warmed.append(actor.warm.remote(history) if history else None)
    ray.get([w for w in warmed if w is not None])
    pids = ray.get([a.pid.remote() for a in actors.values()])
    for (symbol, _actor), pid in zip(actors.items(), pids, strict=True):
        detail = f"pid {pid}" + (f"; warmed on {seen[symbol]} bars" if decided else "")
        out.append(ActorStarted(ts=0, actor="strategy", symbol=symbol, strategy=strategy_name, detail=detail))
    return out


def decide_or_replace(
    ray: Any,
    actors: dict[str, Any],
    bars: list[dict[str, Any]],
    spawn: Callable[[str], Any],
    by_symbol: dict[str, BarSeries],
    seen: dict[str, int],
    writer: Any,
) -> list[Any]:
    """Each bar's decision; an actor that died is alerted, replaced, re-warmed on what it had seen and
    asked again."""
    decided = _decide(ray, actors, bars)
    for j, bar in enumerate(bars):
        if decided[j] is not None:
            continue
        symbol = bar["symbol"]
        ray.get(writer.append.remote([actor_dead_alert(bar["ts"], str(bar["day"]), "strategy", symbol)]))
        actors[symbol] = _replace(ray, spawn(symbol), by_symbol[symbol], seen[symbol], bar, writer)
        decided[j] = ray.get(
            actors[symbol].on_bar.remote(bar["open"], bar["high"], bar["low"], bar["close"], bar["volume"])
        )
    return decided


def _replace(ray: Any, actor: Any, s: BarSeries, bars_seen: int, bar: dict[str, Any], writer: Any) -> Any:
    """Warm a replacement strategy actor up on the ``bars_seen`` bars its predecessor had and log it."""
    history = bar_history(s, bars_seen)
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
