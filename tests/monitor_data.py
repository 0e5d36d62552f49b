"""Crafted daily bars whose replay crosses every alert threshold once (see tests/test_monitor.py).

AAA falls for six sessions, rises 1 % a session (sma_cross 2/4 buys on session 7 and holds), crashes
14 % on session 60 (a daily loss above 5 %, and the first 5-session window below anything the backtest
of sessions 0-59 saw), gaps down 4 % on session 61 where the cross-down exit fills (drawdown past 10 %),
then drifts down without a new entry. BBB never moves and has no bars on sessions 70-73 (a stalled
feed of four ticks).
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import NamedTuple

SESSIONS = 100
GOOD_END = 59  # the reference backtest's last session
CRASH, GAP = 60, 61
BBB_GAP = range(70, 74)


class AlertData(NamedTuple):
    aaa: Path
    bbb: Path
    days: list[str]


def _sessions(n: int) -> list[str]:
    day, out = dt.date(2023, 1, 3), []
    while len(out) < n:
        if day.weekday() < 5:
            out.append(day.isoformat())
        day += dt.timedelta(days=1)
    return out


def _closes() -> list[tuple[float, float]]:
    """(open, close) of AAA per session."""
    rows: list[tuple[float, float]] = []
    close = 100.0
    for k in range(SESSIONS):
        previous = close
        if k == 0:
            opened = close = 100.0
        elif k <= 5:
            opened, close = previous, previous - 1.0
        elif k < CRASH:
            opened, close = previous, previous * 1.01
        elif k == CRASH:
            opened, close = previous * 0.995, previous * 0.86
        elif k == GAP:
            opened, close = previous * 0.96, previous * 0.955
        else:
            opened, close = previous, previous * 0.998
        rows.append((round(opened, 4), round(close, 4)))
    return rows


def write_alert_data(directory: Path) -> AlertData:
    """Write aaa.csv and bbb.csv under ``directory``."""
    days = _sessions(SESSIONS)
    aaa, bbb = directory / "aaa.csv", directory / "bbb.csv"
    with aaa.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["date", "open", "high", "low", "close", "volume"])
        for day, (o, c) in zip(days, _closes(), strict=True):
            w.writerow([day, o, max(o, c), min(o, c), c, 100_000])
    with bbb.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["date", "open", "high", "low", "close", "volume"])
        for k, day in enumerate(days):
            if k not in BBB_GAP:
                w.writerow([day, 50.0, 50.0, 50.0, 50.0, 100_000])
    return AlertData(aaa, bbb, days)
