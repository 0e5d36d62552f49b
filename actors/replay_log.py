"""Where a replayed session stands in the log: the run's events, the feed cut into timestamps, and
how many of them the log says were decided (what a resumed session skips)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tape.events.bars import BarSeries
from tape.events.schema import ActorStarted, ActorStopped, Alert, BarsRecorded, Event, RunEnded, RunStarted
from tape.events.session import BarStep
from tape.store.log import EventLog, LogError

# Events the driver writes around the timestamps (not a timestamp's decisions): they say nothing about
# which bars were processed, so they are left out when the log is folded back into a session.
DRIVER_KINDS = (RunStarted, RunEnded, ActorStarted, ActorStopped, BarsRecorded)


def logged_events(log_path: Path, run_id: str) -> list[Event]:
    """The run's events already in the log (none when the file does not exist yet)."""
    if not Path(log_path).exists():
        return []
    with EventLog.open(log_path, readonly=True) as log:
        return list(log.events(stream_prefix=f"run/{run_id}"))


def timestamp_groups(steps: Sequence[BarStep], by_symbol: dict[str, BarSeries]) -> list[list[dict[str, Any]]]:
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


def decided_groups(
    run_id: str, groups: list[list[dict[str, Any]]], logged: list[Event]
) -> tuple[int, list[list[Event]]]:
    """How many timestamps the log says were decided, and each one's events.

    A timestamp's decisions are appended in one transaction, so the newest decision in the log marks
    the last timestamp decided; later ones that decided nothing are simply decided again.
    """
    decisions = [
        e
        for e in logged
        if not isinstance(e, DRIVER_KINDS) and not (isinstance(e, Alert) and e.rule == "actor_dead")
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
