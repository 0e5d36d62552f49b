"""What every command shares: settings from the root options, consoles, and output helpers."""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import typer
from rich.console import Console

# Piped output is read by programs and tests: never wrap a line there (rich would wrap at 80 columns).
console = Console(
    highlight=False, soft_wrap=not sys.stdout.isatty(), width=None if sys.stdout.isatty() else 200
)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass(frozen=True)
class Settings:
    """Root options shared by all commands."""

    log_path: Path
    data_path: Path = Path("tape-data.db")


def settings(ctx: typer.Context) -> Settings:
    """The settings the root callback stored (defaults when a command is invoked on its own)."""
    root = ctx.find_root()
    if isinstance(root.obj, Settings):
        return root.obj
    return Settings(
        log_path=Path(os.environ.get("TAPE_LOG", "tape.db")),
        data_path=Path(os.environ.get("TAPE_DATA", "tape-data.db")),
    )


def print_json(obj: Any) -> None:
    """One JSON document on stdout (numbers as they are: no rounding here)."""
    sys.stdout.write(msgspec.json.encode(obj).decode() + "\n")
    sys.stdout.flush()


def fmt_ts(ts: int, *, date_only: bool = False) -> str:
    """ns since epoch -> ISO 8601 in UTC (``YYYY-MM-DD`` for ``date_only``)."""
    moment = dt.datetime.fromtimestamp(ts / 1e9, tz=dt.UTC)
    return moment.strftime("%Y-%m-%d") if date_only else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def now_ns() -> int:
    """Wall-clock time for events that have no market time (operator notes). CLI layer only."""
    return time.time_ns()
