"""Running a trading session on Ray actors: the replay feed, the simulated broker, the log.

`tape trade ... --broker sim --feed replay` calls :func:`run_replay_session`: stored bars are played
(at ``speed`` times real time, 0 = as fast as possible) through one StrategyActor per symbol and the
PortfolioActor, whose decisions the LogWriter appends to the log.
"""

from __future__ import annotations

import hashlib
import signal
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
from msgspec.structs import replace

from tape.actors.jobs import ensure_ray, shipped_code
from tape.actors.session_actors import LogWriter, PortfolioActor, StrategyActor
from tape.events.backtest import BacktestConfig, run_ended, run_started
from tape.events.bars import BarSeries
from tape.events.errors import TapeError
from tape.events.monitor import MonitorConfig, actor_dead_alert
from tape.events.recorded import bars_recorded
from tape.events.schema import ActorStarted, ActorStopped, Alert, BarsRecorded, Event, RunEnded, RunStarted
from tape.events.session import BarStep, feed_order
from tape.events.strategies import make_strategy
from tape.store.backtests import code_version
from tape.store.log import EventLog, LogError

Progress = Callable[[int, int], None]


def session_run_id(mode: str, config: BacktestConfig, series: Sequence[BarSeries]) -> str:
    """Content id of a replayed session (same mode, config, data and code: same id)."""
    payload = msgspec.msgpack.encode([mode, config, [s.fingerprint() for s in series], code_version()])
    return hashlib.sha256(payload).hexdigest()[:16]


class SessionStopped(TapeError):
    """The session was stopped (Ctrl-C) between two timestamps; its log holds a stop and it resumes."""

    exit_code = 130

    def __init__(self, run_id: str, bars_done: int, bars_total: int, ts: int) -> None:
        day = datetime.fromtimestamp(ts / 1e9, tz=UTC).date().isoformat() if ts else "the start"
        super().__init__(f"stopped at bar {bars_done} of {bars_total} ({day}) of session {run_id}")
        self.run_id = run_id


class ReplayOutcome(NamedTuple):
    """What :func:`run_replay_session` did: ``new``, ``resumed`` or ``already complete``."""

    run_id: str
    outcome: str
    resumed_at: int = 0  # bars the log already held (a resumed run)


# Events the driver writes around the timestamps (not a timestamp's decisions): they say nothing about
# which bars were processed, so they are left out when the log is folded back into a session.
_DRIVER_KINDS = (RunStarted, RunEnded, ActorStarted, ActorStopped, BarsRecorded)


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
) -> ReplayOutcome:
    """Play ``series`` through the session's actors until the run is complete in the log.

    A run the log holds without its RunEnded (a killed or stopped process) resumes: the portfolio is
    rebuilt by folding its events, the strategies are warmed on the bars already decided and the feed
    goes on after the last timestamp the log committed, so the result equals an uninterrupted run's.
    Ctrl-C stops between two timestamps, logs an ActorStopped and raises :class:`SessionStopped`.

    ``monitor`` turns on the alert rules (events/monitor.py) in the portfolio actor; ``on_run(run_id)``
    is called once the run is opened in the log (a notifier starts following its alerts then). A
    strategy actor that dies is reported (``actor_dead`` alert), replaced and re-warmed on the bars it
    had seen, so the session goes on with the same decisions.
    """
    with _StopOnInterrupt() as interrupt:  # from the start: a Ctrl-C while Ray starts stops too
        return _play(config, series, log_path, speed, address, progress, monitor, on_run, interrupt)


def _play(
    config: BacktestConfig,
    series: Sequence[BarSeries],
    log_path: Path,
    speed: float,
    address: str | None,
    progress: Progress | None,
    monitor: MonitorConfig | None,
    on_run: Callable[[str], None] | None,
    interrupt: _StopOnInterrupt,
) -> ReplayOutcome:
    run_id = session_run_id("sim", config, series)
    logged = _logged_events(log_path, run_id)
    if any(isinstance(e, RunEnded) and e.status == "completed" for e in logged):
        return ReplayOutcome(run_id, "already complete")
    ray = ensure_ray(address)
    strategy = make_strategy(config.strategy, config.params)
    code = shipped_code(config)
    writer = ray.remote(LogWriter).remote(str(log_path), run_id, False)
    steps = feed_order(list(series))
    by_symbol = {s.symbol: s for s in series}
    groups = _timestamp_groups(steps, by_symbol)
    opening = next((e for e in logged if isinstance(e, RunStarted)), None)
    if opening is None:
        opening = run_started(
            config,
            series,
            run_id=run_id,
            mode="sim",
            code_version=code_version(),
            label="broker=sim feed=replay",
        )
        # The feed is logged whole: a what-if re-runs the session from the log, without the data store.
        ray.get(writer.append.remote([opening, *bars_recorded(series, "feed", opening.ts)]))
    done, decided_before = _decided_groups(run_id, groups, logged)
    if on_run is not None:
        on_run(run_id)

    def spawn(symbol: str) -> Any:
        return ray.remote(StrategyActor).remote(symbol, config.strategy, strategy.param_dict(), code)

    actors = {s.symbol: spawn(s.symbol) for s in series}
    portfolio = ray.remote(PortfolioActor).remote(config, run_id, strategy.name, writer, monitor)
    seen = dict.fromkeys(actors, 0)  # bars each strategy actor has been fed (what a replacement replays)
    for group in groups[:done]:
        for bar in group:
            seen[bar["symbol"]] += 1
    try:
        started_events = _start_actors(
            ray, actors, portfolio, groups[:done], decided_before, by_symbol, seen, strategy.name
        )
        ray.get(writer.append.remote([replace(e, ts=opening.ts) for e in started_events]))
        bars_done = sum(len(g) for g in groups[:done])
        # Paced from the first timestamp this process plays (a resumed run does not wait for the rest).
        started, first_ts = time.monotonic(), groups[done][0]["ts"] if done < len(groups) else 0
        for k in range(done, len(groups)):
            if interrupt.requested:
                last_ts = groups[k - 1][-1]["ts"] if k else 0
                stop = ActorStopped(
                    ts=last_ts or opening.ts,
                    actor="session",
                    strategy=strategy.name,
                    reason="interrupted (SIGINT)",
                )
                ray.get(writer.append.remote([stop]))
                raise SessionStopped(run_id, bars_done, len(steps), last_ts)
            bars = [dict(b) for b in groups[k]]
            if speed > 0:  # wait until this timestamp is due at `speed` times real time
                due = (bars[0]["ts"] - first_ts) / 1e9 / speed
                time.sleep(max(0.0, due - (time.monotonic() - started)))
            decided = _decide_or_replace(ray, actors, bars, spawn, by_symbol, seen, writer)
            for bar in bars:
                seen[bar["symbol"]] += 1
            for bar, (side, values, reason) in zip(bars, decided, strict=True):
                bar.update(side=side, values=values, reason=reason)
            ray.get(portfolio.process.remote(bars))
            bars_done += len(bars)
            if progress is not None:
                progress(bars_done, len(steps))
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
    finally:
        try:
            ray.get(writer.close.remote())
        finally:
            for handle in (*actors.values(), portfolio, writer):
                ray.kill(handle)
    return ReplayOutcome(run_id, "resumed" if logged else "new", sum(len(g) for g in groups[:done]))


def _logged_events(log_path: Path, run_id: str) -> list[Event]:
    """The run's events already in the log (none when the file does not exist yet)."""
    if not Path(log_path).exists():
        return []
    with EventLog.open(log_path, readonly=True) as log:
        return list(log.events(stream_prefix=f"run/{run_id}"))


def _timestamp_groups(
    steps: Sequence[BarStep], by_symbol: dict[str, BarSeries]
) -> list[list[dict[str, Any]]]:
    """The feed cut into timestamps: each a list of bars (dicts the actors take) in feed order."""
    groups: list[list[dict[str, Any]]] = []
    group: list[dict[str, Any]] = []
    for step in steps:
        s, i = by_symbol[step.symbol], step.row
        group.append(
            {
                "symbol": step.symbol,
                "ts": step.ts,
                "day": step.day,
                "open": float(s.open[i]),
                "high": float(s.high[i]),
                "low": float(s.low[i]),
                "close": float(s.close[i]),
                "volume": float(s.volume[i]),
                "last": step.last_of_symbol,
                "session_end": step.session_end,
            }
        )
        if step.group_end:
            groups.append(group)
            group = []
    return groups


def _decided_groups(
    run_id: str, groups: list[list[dict[str, Any]]], logged: list[Event]
) -> tuple[int, list[list[Event]]]:
    """How many timestamps the log says were decided, and each one's events.

    A timestamp's decisions are appended in one transaction, so the newest decision in the log marks
    the last timestamp decided; later ones that decided nothing are simply decided again.
    """
    decisions = [
        e
        for e in logged
        if not isinstance(e, _DRIVER_KINDS) and not (isinstance(e, Alert) and e.rule == "actor_dead")
    ]
    if not decisions:
        return 0, []
    last_ts = max(e.ts for e in decisions)
    index = {g[0]["ts"]: k for k, g in enumerate(groups)}
    if last_ts not in index or any(e.ts not in index for e in decisions):
        raise LogError(f"run {run_id} in the log does not match its bars: it cannot be resumed")
    done = index[last_ts] + 1
    written: list[list[Event]] = [[] for _ in range(done)]
    for event in decisions:
        written[index[event.ts]].append(event)
    return done, written


def _start_actors(
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
        history = [
            (float(s.open[i]), float(s.high[i]), float(s.low[i]), float(s.close[i]), float(s.volume[i]))
            for i in range(seen[symbol])
        ]
        warmed.append(actor.warm.remote(history) if history else None)
    ray.get([w for w in warmed if w is not None])
    pids = ray.get([a.pid.remote() for a in actors.values()])
    for (symbol, _actor), pid in zip(actors.items(), pids, strict=True):
        detail = f"pid {pid}" + (f"; warmed on {seen[symbol]} bars" if decided else "")
        out.append(ActorStarted(ts=0, actor="strategy", symbol=symbol, strategy=strategy_name, detail=detail))
    return out


class _StopOnInterrupt:
    """Ctrl-C asks the loop to stop after the timestamp in flight (a second Ctrl-C interrupts at once)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _StopOnInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _decide_or_replace(
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
