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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
from msgspec.structs import replace

from tape.actors.jobs import ensure_ray, shipped_code
from tape.actors.replay_actors import decide_or_replace, start_actors
from tape.actors.replay_log import decided_groups, logged_events, timestamp_groups
from tape.actors.session_actors import LogWriter, PortfolioActor, StrategyActor
from tape.events.backtest import BacktestConfig, run_ended, run_started
from tape.events.bars import BarSeries
from tape.events.errors import TapeError
from tape.events.monitor import MonitorConfig
from tape.events.recorded import bars_recorded
from tape.events.schema import ActorStopped, RunEnded, RunStarted
from tape.events.session import feed_order
from tape.events.strategies import make_strategy
from tape.store.backtests import code_version

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


@dataclass
class _Players:
    """The session's Ray handles and what each strategy actor has been fed."""

    ray: Any
    actors: dict[str, Any]
    portfolio: Any
    writer: Any
    spawn: Callable[[str], Any]
    by_symbol: dict[str, BarSeries]
    seen: dict[str, int]

    def play(self, group: list[dict[str, Any]]) -> None:
        """Decide one timestamp's bars on the strategy actors and hand them to the portfolio."""
        bars = [dict(b) for b in group]
        decided = decide_or_replace(
            self.ray, self.actors, bars, self.spawn, self.by_symbol, self.seen, self.writer
        )
        for bar, (side, values, reason) in zip(bars, decided, strict=True):
            self.seen[bar["symbol"]] += 1
            bar.update(side=side, values=values, reason=reason)
        self.ray.get(self.portfolio.process.remote(bars))

    def kill(self) -> None:
        """Close the writer (flushing it), then end every actor."""
        try:
            self.ray.get(self.writer.close.remote())
        finally:
            for handle in (*self.actors.values(), self.portfolio, self.writer):
                self.ray.kill(handle)


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
    logged = logged_events(log_path, run_id)
    if any(isinstance(e, RunEnded) and e.status == "completed" for e in logged):
        return ReplayOutcome(run_id, "already complete")
    ray = ensure_ray(address)
    strategy = make_strategy(config.strategy, config.params)
    code = shipped_code(config)
    writer = ray.remote(LogWriter).remote(str(log_path), run_id, False)
    steps = feed_order(list(series))
    by_symbol = {s.symbol: s for s in series}
    groups = timestamp_groups(steps, by_symbol)
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
    done, decided_before = decided_groups(run_id, groups, logged)
    if on_run is not None:
        on_run(run_id)

    def spawn(symbol: str) -> Any:
        return ray.remote(StrategyActor).remote(symbol, config.strategy, strategy.param_dict(), code)

    actors = {s.symbol: spawn(s.symbol) for s in series}
    portfolio = ray.remote(PortfolioActor).remote(config, run_id, strategy.name, writer, monitor)
    seen = dict.fromkeys(actors, 0)  # bars each strategy actor has been fed (what a replacement replays)
    for bar in (b for group in groups[:done] for b in group):
        seen[bar["symbol"]] += 1
    players = _Players(ray, actors, portfolio, writer, spawn, by_symbol, seen)
    try:
        started_events = start_actors(
            ray, actors, portfolio, groups[:done], decided_before, by_symbol, seen, strategy.name
        )
        ray.get(writer.append.remote([replace(e, ts=opening.ts) for e in started_events]))
        _play_from(players, groups, done, speed, progress, interrupt, run_id, opening.ts, strategy.name)
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
        players.kill()
    return ReplayOutcome(run_id, "resumed" if logged else "new", sum(len(g) for g in groups[:done]))


def _play_from(
    players: _Players,
    groups: list[list[dict[str, Any]]],
    done: int,
    speed: float,
    progress: Progress | None,
    interrupt: _StopOnInterrupt,
    run_id: str,
    opened_ts: int,
    strategy_name: str,
) -> None:
    """Play the timestamps after the ``done`` ones the log holds, paced at ``speed`` (0: at once);
    Ctrl-C stops between two of them with an ActorStopped and :class:`SessionStopped`."""
    total = sum(len(g) for g in groups)
    bars_done = sum(len(g) for g in groups[:done])
    # Paced from the first timestamp this process plays (a resumed run does not wait for the rest).
    started, first_ts = time.monotonic(), groups[done][0]["ts"] if done < len(groups) else 0
    for k in range(done, len(groups)):
        if interrupt.requested:
            last_ts = groups[k - 1][-1]["ts"] if k else 0
            stop = ActorStopped(
                ts=last_ts or opened_ts,
                actor="session",
                strategy=strategy_name,
                reason="interrupted (SIGINT)",
            )
            players.ray.get(players.writer.append.remote([stop]))
            raise SessionStopped(run_id, bars_done, total, last_ts)
        if speed > 0:  # wait until this timestamp is due at `speed` times real time
            due = (groups[k][0]["ts"] - first_ts) / 1e9 / speed
            time.sleep(max(0.0, due - (time.monotonic() - started)))
        players.play(groups[k])
        bars_done += len(groups[k])
        if progress is not None:
            progress(bars_done, total)


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
