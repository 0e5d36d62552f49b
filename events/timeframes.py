"""Bar timeframes: parsing, their length, and how many marks a year they imply for annualising."""

from __future__ import annotations

import re

from tape.events.errors import ConfigError

NS_PER_MINUTE = 60_000_000_000
NS_PER_DAY = 86_400_000_000_000

_UNITS = {"Min": NS_PER_MINUTE, "Hour": 60 * NS_PER_MINUTE, "Day": NS_PER_DAY, "Week": 7 * NS_PER_DAY}
_PATTERN = re.compile(r"^(\d+)(Min|Hour|Day|Week)$")


def parse_timeframe(text: str) -> tuple[int, str]:
    """``"5Min"`` -> ``(5, "Min")``; raises ConfigError for anything else."""
    match = _PATTERN.match(text.strip())
    if not match or int(match.group(1)) <= 0:
        raise ConfigError(f"unknown timeframe {text!r} (use e.g. 1Min, 5Min, 15Min, 1Hour, 1Day, 1Week)")
    return int(match.group(1)), match.group(2)


def timeframe_ns(text: str) -> int:
    """Length of one bar in nanoseconds."""
    amount, unit = parse_timeframe(text)
    return amount * _UNITS[unit]


def is_intraday(text: str) -> bool:
    """True for bars shorter than a day (equity is then marked once per session, not per bar)."""
    return timeframe_ns(text) < NS_PER_DAY


def marks_per_year(text: str, *, crypto: bool = False) -> float:
    """How many equity marks a year a run of this timeframe produces: the Sharpe annualisation factor.

    Daily and longer bars are marked every bar (252 trading days a year, 365 for crypto, 52 weeks);
    intraday bars are marked at each session close, so they annualise like daily bars.
    """
    amount, unit = parse_timeframe(text)
    days = 365.0 if crypto else 252.0
    if unit == "Week":
        return 52.0 / amount
    if unit == "Day":
        return days / amount
    return days
