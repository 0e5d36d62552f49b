"""Following one trading run in the log while another process appends to it (`tape watch`, `tape status`).

Each poll reads only the rows after the last seq seen, through a read-only connection opened for that
poll: a reader never holds a WAL snapshot open between refreshes, so it cannot stall checkpoints.
"""

from __future__ import annotations

from pathlib import Path

from tape.events.schema import Event
from tape.events.streams import run_stream
from tape.store.log import EventLog, LogError
from tape.store.runs import find_run

TRADING_MODES = ("live", "paper", "sim", "replay")


def newest_trading_run(log: EventLog) -> str:
    """The run id of the most recently started trading session (not a backtest) in the log."""
    rows = log.query(
        "SELECT stream FROM events WHERE stream >= 'run/' AND stream < 'run0' AND version = 1 "
        "AND kind = 'run_started' ORDER BY seq DESC"
    )
    for (stream,) in rows:
        run_id = stream[len("run/") :]
        if find_run(log, run_id).mode in TRADING_MODES:
            return run_id
    raise LogError(f"no trading session in {log.path} yet (start one with `tape trade`)")


class RunFollower:
    """The events of one run, read incrementally."""

    def __init__(self, log_path: Path, run_id: str | None = None) -> None:
        self._path = log_path
        self._wanted = run_id
        self.run_id = ""
        self.events: list[Event] = []
        self._after = 0

    def poll(self) -> int:
        """Read what was appended since the last poll; returns how many new events arrived."""
        with EventLog.open(self._path, readonly=True) as log:
            if not self.run_id:
                self.run_id = find_run(log, self._wanted).run_id if self._wanted else newest_trading_run(log)
            new = list(log.read(stream_prefix=run_stream(self.run_id), after_seq=self._after))
        if new:
            self._after = new[-1].seq
            self.events.extend(r.event for r in new)
        return len(new)
