"""The NYSE calendar and market clock behind `GET /v2/calendar` and `GET /v2/clock`.

Sessions (holidays and half days included) come from `exchange_calendars`, read once into plain
datetimes; the clock is computed from them.
"""

from __future__ import annotations

import bisect
import threading
import warnings
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from .timeutil import NEW_YORK


@dataclass(frozen=True)
class Session:
    day: date
    open: datetime  # aware, UTC
    close: datetime


_lock = threading.Lock()
_sessions: list[Session] = []


def sessions() -> list[Session]:
    with _lock:
        if not _sessions:
            import exchange_calendars  # a project dependency; imported lazily (it takes a moment)

            with warnings.catch_warnings():  # its construction trips pandas deprecation warnings
                warnings.simplefilter("ignore")
                schedule = exchange_calendars.get_calendar("XNYS").schedule
            for day, opens, closes in zip(schedule.index, schedule["open"], schedule["close"], strict=True):
                _sessions.append(Session(day.date(), opens.to_pydatetime(), closes.to_pydatetime()))
        return _sessions


def calendar_days(start: date | None, end: date | None) -> list[dict[str, str]]:
    """Alpaca's calendar entries for the sessions in [start, end] (the whole calendar by default)."""
    all_sessions = sessions()
    days = [s.day for s in all_sessions]
    lo = bisect.bisect_left(days, start) if start else 0
    hi = bisect.bisect_right(days, end) if end else len(days)
    entries = []
    for index in range(lo, hi):
        session = all_sessions[index]
        settle = all_sessions[min(index + 1, len(all_sessions) - 1)].day
        entries.append(
            {
                "date": session.day.isoformat(),
                "open": session.open.astimezone(NEW_YORK).strftime("%H:%M"),
                "close": session.close.astimezone(NEW_YORK).strftime("%H:%M"),
                "session_open": "0400",
                "session_close": "2000",
                "settlement_date": settle.isoformat(),
            }
        )
    return entries


def clock(now: datetime) -> dict[str, Any]:
    """Alpaca's clock: New York timestamps, whether the market is open, the next open and close."""
    all_sessions = sessions()
    closes = [s.close for s in all_sessions]
    index = bisect.bisect_right(closes, now)  # the first session that has not closed yet
    if index >= len(all_sessions):
        raise ValueError("the clock is past the end of the market calendar")
    current = all_sessions[index]
    is_open = current.open <= now
    next_open = all_sessions[index + 1].open if is_open and index + 1 < len(all_sessions) else current.open
    return {
        "timestamp": now.astimezone(NEW_YORK).isoformat(),
        "is_open": is_open,
        "next_open": next_open.astimezone(NEW_YORK).isoformat(),
        "next_close": current.close.astimezone(NEW_YORK).isoformat(),
    }


def session_close_after(when: datetime) -> datetime:
    """The close of the session a day order placed at ``when`` works in: the session open then, or the
    next one (an order placed after the close or before the open is for the next session)."""
    all_sessions = sessions()
    closes = [s.close for s in all_sessions]
    index = bisect.bisect_right(closes, when)
    if index >= len(all_sessions):
        raise ValueError("the order is past the end of the market calendar")
    return all_sessions[index].close
