"""Timestamps and timeframes as Alpaca writes and reads them.

Every instant inside the emulator is a timezone-aware UTC `datetime`. Alpaca sends RFC 3339 with a
trailing `Z` (`2022-01-03T09:00:00Z`, fractional seconds only when there are some) and accepts
RFC 3339 with any offset or a bare `YYYY-MM-DD` date in query parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
# Alpaca's crypto daily bars start at midnight US Central time.
CHICAGO = ZoneInfo("America/Chicago")

_FRACTION = re.compile(r"(\.\d+)")


def now() -> datetime:
    return datetime.now(UTC)


def to_utc(value: Any) -> datetime:
    """A datetime, pandas Timestamp, date or RFC 3339 / ISO string -> aware UTC datetime.

    Naive values are taken as UTC, as alpaca-py does.
    """
    if hasattr(value, "to_pydatetime"):  # pandas.Timestamp
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        return parse_rfc3339(value)
    raise TypeError(f"not a timestamp: {value!r}")


def parse_rfc3339(text: str) -> datetime:
    """Parse what Alpaca accepts in `start`/`end`: RFC 3339 (up to nanoseconds) or `YYYY-MM-DD`.

    Raises ValueError on anything else.
    """
    text = text.strip()
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
    text = text.replace("z", "Z").replace("Z", "+00:00")
    # Python keeps microseconds: cut nanosecond fractions down to six digits.
    text = _FRACTION.sub(lambda m: m.group(1)[:7], text, count=1)
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without a timezone: {text!r}")
    return parsed.astimezone(UTC)


def format_ts(dt: datetime) -> str:
    """RFC 3339 in UTC with `Z`, fractional seconds only when non-zero (Alpaca's own style)."""
    dt = dt.astimezone(UTC)
    base = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        base += f".{dt.microsecond:06d}".rstrip("0")
    return base + "Z"


def format_nanos(dt: datetime) -> str:
    """RFC 3339 with nine fractional digits, the form Alpaca uses inside page tokens."""
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{dt.microsecond:06d}000Z"


@dataclass(frozen=True)
class TimeFrame:
    """A bar timeframe such as `5Min`, `1Hour`, `1Day` (Alpaca's spelling, plus its short aliases)."""

    amount: int
    unit: str  # "Min" | "Hour" | "Day" | "Week" | "Month"

    _ALIASES: ClassVar[dict[str, str]] = {
        "Min": "Min",
        "T": "Min",
        "Hour": "Hour",
        "H": "Hour",
        "Day": "Day",
        "D": "Day",
        "Week": "Week",
        "W": "Week",
        "Month": "Month",
        "M": "Month",
    }
    _PATTERN: ClassVar[re.Pattern[str]] = re.compile(r"^(\d+)(Min|T|Hour|H|Day|D|Week|W|Month|M)$")

    @classmethod
    def parse(cls, text: str) -> TimeFrame:
        match = cls._PATTERN.match(text or "")
        if not match:
            raise ValueError("invalid timeframe")
        amount, unit = int(match.group(1)), cls._ALIASES[match.group(2)]
        valid = {
            "Min": 1 <= amount <= 59,
            "Hour": 1 <= amount <= 23,
            "Day": amount == 1,
            "Week": amount == 1,
            "Month": amount in (1, 2, 3, 4, 6, 12),
        }[unit]
        if not valid:
            raise ValueError("invalid timeframe")
        return cls(amount, unit)

    @property
    def letter(self) -> str:
        """The one-letter unit Alpaca writes inside page tokens (`AAPL|M|...`)."""
        return {"Min": "M", "Hour": "H", "Day": "D", "Week": "W", "Month": "N"}[self.unit]

    def bucket(self, ts: datetime, day_zone: ZoneInfo) -> datetime:
        """The opening timestamp of the bar that `ts` belongs to.

        Minute and hour bars align to UTC multiples of their length (13:00Z, 13:05Z ...); day, week and
        month bars open at local midnight in `day_zone` (New York for stocks, Chicago for crypto).
        """
        if self.unit in ("Min", "Hour"):
            step = self.amount * (60 if self.unit == "Min" else 3600)
            epoch = int(ts.timestamp())
            return datetime.fromtimestamp(epoch - epoch % step, UTC)
        local = ts.astimezone(day_zone).date()
        if self.unit == "Week":
            local -= timedelta(days=local.weekday())
        elif self.unit == "Month":
            month0 = (local.month - 1) // self.amount * self.amount
            local = date(local.year, month0 + 1, 1)
        return datetime.combine(local, datetime.min.time(), tzinfo=day_zone).astimezone(UTC)
