"""Finding runs in the log: one summary line per run, read through the (stream, version) index."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec

from tape.events.schema import PositionClosed, RunEnded, RunStarted
from tape.events.streams import portfolio_stream, run_stream
from tape.store.log import EventLog, LogError, Recorded


class RunInfo(msgspec.Struct, frozen=True):
    """What `tape runs` shows for one run."""

    run_id: str
    mode: str
    strategy: str
    symbols: list[str]
    start_ts: int
    end_ts: int
    status: str
    trades: int
    net_pnl: float
    first_seq: int
    origin: str = "built-in"  # where the strategy came from (kind, location, source hash)


def list_runs(log: EventLog) -> list[RunInfo]:
    """Every run in the log, oldest first."""
    # A run's control stream is exactly "run/<id>" and RunStarted is its version 1; the range scan
    # walks the (stream, version) index instead of the whole table.
    rows = log.query(
        "SELECT stream FROM events WHERE stream >= 'run/' AND stream < 'run0' AND version = 1 "
        "AND kind = 'run_started' ORDER BY seq"
    )
    return [run_info(log, stream[len("run/") :]) for (stream,) in rows]


def find_run(log: EventLog, run_id: str) -> RunStarted:
    """The RunStarted event of a run; a clear error for an unknown id (prefixes of 4+ chars accepted)."""
    started = _run_started(log, run_id)
    if started is not None:
        return started
    if len(run_id) >= 4:
        matches = [r.run_id for r in list_runs(log) if r.run_id.startswith(run_id)]
        if len(matches) == 1:
            found = _run_started(log, matches[0])
            assert found is not None
            return found
        if len(matches) > 1:
            raise LogError(f"run id {run_id!r} is ambiguous: {', '.join(matches[:5])}")
    raise LogError(f"no run {run_id!r} in {log.path} (see `tape runs`)")


def _run_started(log: EventLog, run_id: str) -> RunStarted | None:
    for rec in log.read(stream=run_stream(run_id), limit=1):
        if isinstance(rec.event, RunStarted):
            return rec.event
    return None


def run_info(log: EventLog, run_id: str) -> RunInfo:
    """Summary of one run from its control and portfolio streams."""
    started: RunStarted | None = None
    ended: RunEnded | None = None
    first_seq = 0
    end_ts = 0
    stopped = False
    for rec in log.read(stream=run_stream(run_id), kinds=("run_started", "run_ended", "actor_stopped")):
        if isinstance(rec.event, RunStarted):
            started, first_seq = rec.event, rec.seq
        elif isinstance(rec.event, RunEnded):
            ended, end_ts = rec.event, rec.ts
        else:
            stopped = True
    if started is None:
        raise LogError(f"no run {run_id!r} in {log.path}")
    trades, net = 0, 0.0
    for event in log.events(stream=portfolio_stream(run_id), kinds=("position_closed",)):
        assert isinstance(event, PositionClosed)
        trades += 1
        net += event.net_pnl
    return RunInfo(
        run_id=run_id,
        mode=started.mode,
        strategy=started.strategy,
        symbols=list(started.symbols),
        start_ts=started.ts,
        end_ts=end_ts,
        status=ended.status if ended else _unfinished(started.mode, stopped),
        trades=trades,
        net_pnl=round(net, 2),
        first_seq=first_seq,
        origin=strategy_origin(started),
    )


def strategy_origin(started: RunStarted) -> str:
    """Where a run's strategy came from, in one phrase: "built-in", or kind, location and source hash."""
    origin = started.config.get("strategy_origin") or {}
    if not origin:
        return "built-in"
    checked = f", {origin['check']}" if origin.get("check") else ""
    sha = origin.get("sha256", "")[:12]
    return f"{origin.get('kind', '?')} {origin.get('location', '?')} (sha256 {sha}{checked})"


def _unfinished(mode: str, stopped: bool) -> str:
    """A run without its RunEnded: a live session may still be running; a replayed session or a
    backtest was killed ("incomplete") or stopped, and resumes when its command is repeated."""
    if mode in ("live", "paper"):
        return "stopped" if stopped else "running"
    return "stopped" if stopped else "incomplete"


def run_events(log: EventLog, run_id: str) -> Iterator[Recorded]:
    """Every stored event of one run (all its streams), in log order."""
    return log.read(stream_prefix=run_stream(run_id))
