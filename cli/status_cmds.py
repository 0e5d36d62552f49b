"""A trading run's status folded from the log: what `tape status` prints when no engine runs (or for
``--run``), the same figures `tape watch` shows."""

from __future__ import annotations

from pathlib import Path

from tape.cli.common import console, err_console, print_json
from tape.cli.status_view import status_screen
from tape.events.status import run_status
from tape.store.run_follow import RunFollower


def print_run_status(log_path: Path, run: str | None, *, json: bool, note: str = "") -> None:
    """Print the newest (or given) trading session's status; ``note`` goes to stderr first."""
    follower = RunFollower(log_path, run)
    follower.poll()
    status = run_status(follower.events)
    if note:
        err_console.print(note)
    if json:
        print_json({"engine": None, **status})
    else:
        console.print(status_screen(status))
