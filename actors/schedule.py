"""When the live engine runs a cycle: every N seconds, minutes or hours, inside exchange sessions.

Stocks follow the NYSE calendar of ``exchange_calendars`` (holidays, half days, 9:30-16:00 New York);
crypto runs around the clock. Cycles are aligned to the interval (a 5-minute schedule runs at :00,
:05, ...), and a cycle that would fall outside a session moves to the next session's open.
"""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING

from tape.events.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

_INTERVAL = re.compile(r"^(\d+)\s*(s|m|h)$")
_UNITS = {"s": 1, "m": 60, "h": 3600}
NS = 1_000_000_000


def parse_interval(text: str) -> int:
    """``"5m"`` -> 300 seconds; ``s``, ``m`` and ``h`` are understood."""
    match = _INTERVAL.match(text.strip().lower())
    if not match or int(match.group(1)) <= 0:
        raise ConfigError(f"--interval expects e.g. 30s, 5m or 1h, got {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


@cache
def _nyse():  # type: ignore[no-untyped-def]
    import exchange_calendars as xc

    return xc.get_calendar("XNYS")


def is_crypto(symbol: str) -> bool:
    """Crypto pairs are written with a slash (BTC/USD) and trade around the clock."""
    return "/" in symbol


def next_run(now_ns: int, interval_s: int, *, crypto: bool = False) -> int:
    """The first aligned cycle time strictly after ``now_ns`` that is inside a trading session."""
    step = interval_s * NS
    candidate = (now_ns // step + 1) * step
    if crypto:
        return candidate
    import pandas as pd  # only on the live path: `tape --help` must not pay for pandas

    calendar = _nyse()
    for _ in range(1000):
        moment = pd.Timestamp(candidate, tz="UTC")
        if calendar.is_open_on_minute(moment, ignore_breaks=True) and not _is_close(calendar, moment):
            return candidate
        opens = calendar.next_open(moment)
        candidate = max(int(opens.value), candidate + step)
        candidate = -(-candidate // step) * step  # keep cycles aligned to the interval
    raise ConfigError("no trading session found in the next 1,000 candidate cycles")


def _is_close(calendar, moment: pd.Timestamp) -> bool:  # type: ignore[no-untyped-def]
    # exchange_calendars counts the close minute as open; a cycle at the bell would see no new bar.
    session = calendar.minute_to_session(moment, direction="previous")
    return moment >= calendar.session_close(session)


def is_session_end(bar_ts: int, bar_ns: int, *, crypto: bool = False) -> bool:
    """Whether the bar starting at ``bar_ts`` is the last of its session (equity is marked there).

    Stocks: the bar ends at or after the NYSE close of its day (16:00, or 13:00 on half days). Crypto
    has no close; its sessions are UTC days.
    """
    day = 86_400 * NS
    end = bar_ts + bar_ns
    if crypto:
        return end % day == 0 or bar_ns >= day
    import pandas as pd

    calendar = _nyse()
    moment = pd.Timestamp(bar_ts, tz="UTC")
    session = calendar.minute_to_session(moment, direction="previous")
    return end >= int(calendar.session_close(session).value)
