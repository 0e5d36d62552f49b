"""Market data as the core sees it: one symbol's bars as numpy columns, validated and fingerprinted."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import numpy as np

from tape.events.errors import DataError
from tape.events.schema import DataFingerprint

NY_TZ = "America/New_York"


@dataclass(frozen=True, slots=True)
class BarSeries:
    """OHLCV bars of one symbol, oldest first. ``ts`` is the bar's start, ns since the epoch (UTC).

    ``session`` is the exchange-local calendar day of each bar as an integer (days since 1970-01-01),
    computed once on load so the per-bar path never touches time zones.
    """

    symbol: str
    timeframe: str
    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    session: np.ndarray
    source: str = "sample"
    adjusted: bool = False
    _fingerprint: list[DataFingerprint] = field(default_factory=list, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    @classmethod
    def from_arrays(
        cls,
        symbol: str,
        timeframe: str,
        ts: np.ndarray,
        open: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
        volume: np.ndarray,
        *,
        source: str = "sample",
        adjusted: bool = False,
        tz: str = NY_TZ,
        validate: bool = True,
    ) -> BarSeries:
        """Build a series from columns; validates them unless told not to (already-validated data)."""
        cols = [np.ascontiguousarray(a, dtype=np.float64) for a in (open, high, low, close, volume)]
        ts = np.ascontiguousarray(ts, dtype=np.int64)
        if validate:
            problem = find_bad_bar(ts, *cols)
            if problem is not None:
                row, why = problem
                raise DataError(f"{symbol}: bar {row} ({_fmt_ts(int(ts[row]))}) {why}")
        return cls(
            symbol, timeframe, ts, *cols, session=session_days(ts, tz), source=source, adjusted=adjusted
        )

    def between(self, start_ts: int | None = None, end_ts: int | None = None) -> BarSeries:
        """Bars with ``start_ts <= ts <= end_ts`` (either bound optional)."""
        lo = 0 if start_ts is None else int(np.searchsorted(self.ts, start_ts, side="left"))
        hi = len(self) if end_ts is None else int(np.searchsorted(self.ts, end_ts, side="right"))
        return self.take(lo, hi)

    def take(self, lo: int, hi: int) -> BarSeries:
        """Bars ``lo:hi`` by position."""
        return BarSeries(
            self.symbol,
            self.timeframe,
            self.ts[lo:hi],
            self.open[lo:hi],
            self.high[lo:hi],
            self.low[lo:hi],
            self.close[lo:hi],
            self.volume[lo:hi],
            self.session[lo:hi],
            self.source,
            self.adjusted,
        )

    def fingerprint(self) -> DataFingerprint:
        """sha256 over the columns exactly as the core reads them (cached: series are immutable)."""
        if not self._fingerprint:
            digest = hashlib.sha256()
            for col in (self.ts, self.open, self.high, self.low, self.close, self.volume):
                digest.update(
                    np.ascontiguousarray(col).astype(col.dtype.newbyteorder("<"), copy=False).tobytes()
                )
            self._fingerprint.append(
                DataFingerprint(
                    symbol=self.symbol,
                    source=self.source,
                    timeframe=self.timeframe,
                    start_ts=int(self.ts[0]) if len(self) else 0,
                    end_ts=int(self.ts[-1]) if len(self) else 0,
                    rows=len(self),
                    sha256=digest.hexdigest(),
                    adjusted=self.adjusted,
                )
            )
        return self._fingerprint[0]


def find_bad_bar(
    ts: np.ndarray, open: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray
) -> tuple[int, str] | None:
    """First row that breaks a rule, with the rule, or None when every bar is sound.

    Rules: no NaN or infinity, timestamps strictly increasing, prices positive,
    high >= max(open, close), low <= min(open, close), volume >= 0.
    """
    n = ts.shape[0]
    checks: list[tuple[np.ndarray, str]] = []
    for name, col in (("open", open), ("high", high), ("low", low), ("close", close), ("volume", volume)):
        checks.append((~np.isfinite(col), f"has a missing or infinite {name}"))
    for name, col in (("open", open), ("high", high), ("low", low), ("close", close)):
        checks.append((col <= 0, f"has a non-positive {name}"))
    order = np.zeros(n, dtype=bool)
    if n > 1:
        order[1:] = ts[1:] <= ts[:-1]
    checks.append((order, "is not after the bar before it (timestamps must be sorted and unique)"))
    checks.append((high < np.maximum(open, close), "has high below open or close"))
    checks.append((low > np.minimum(open, close), "has low above open or close"))
    checks.append((volume < 0, "has negative volume"))
    first: tuple[int, str] | None = None
    for mask, why in checks:
        hits = np.flatnonzero(mask)
        if hits.size and (first is None or hits[0] < first[0]):
            first = (int(hits[0]), why)
    return first


def session_days(ts: np.ndarray, tz: str = NY_TZ) -> np.ndarray:
    """Exchange-local calendar day (days since epoch) of each timestamp, vectorised."""
    if ts.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    return (ts + utc_offsets_ns(ts, tz)) // NS_PER_DAY


NS_PER_HOUR = 3_600_000_000_000
NS_PER_DAY = 86_400_000_000_000


def utc_offsets_ns(ts: np.ndarray, tz: str) -> np.ndarray:
    """The zone's UTC offset (ns) at each timestamp, asking the zone once per distinct hour.

    An hour whose start and end have the same offset has it throughout (zones change offset at most
    once an hour); only the bars of an hour with a change are asked one by one."""
    zone = ZoneInfo(tz)
    hours, where = np.unique(ts // NS_PER_HOUR, return_inverse=True)

    def offset(at_ns: int) -> int:
        moment = dt.datetime.fromtimestamp(at_ns // 1_000_000_000, tz=dt.UTC).astimezone(zone)
        return int(moment.utcoffset().total_seconds()) * 1_000_000_000  # type: ignore[union-attr]

    starts = np.array([offset(int(h) * NS_PER_HOUR) for h in hours], dtype=np.int64)
    ends = np.array([offset(int(h + 1) * NS_PER_HOUR - 1) for h in hours], dtype=np.int64)
    out = starts[where]
    for i in np.flatnonzero((starts != ends)[where]):
        out[i] = offset(int(ts[i]))
    return out


def _fmt_ts(ts: int) -> str:
    return str(np.datetime64(ts, "ns"))[:19].replace("T", " ")
