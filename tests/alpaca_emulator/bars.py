"""Bar aggregation to a timeframe and Alpaca's page-token paging.

Seeded bars are the finest data the emulator has; a request for a coarser timeframe aggregates them
(open of the first, max high, min low, close of the last, summed volume and trade count, volume-
weighted vwap). A request for a finer timeframe than the seed returns each seeded bar in its own
bucket: the emulator never invents bars.

Paging follows Alpaca: results are ordered by symbol, then by time (`sort=asc|desc`); `limit`
counts bars across all symbols; when more remain, `next_page_token` is the base64 of
`SYMBOL|<unit letter>|<timestamp of the last bar returned>` and the next page starts after it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from .market import Bar
from .timeutil import TimeFrame, format_nanos, parse_rfc3339


def aggregate(bars: list[Bar], timeframe: TimeFrame, day_zone: ZoneInfo) -> list[Bar]:
    """Aggregate time-ordered bars into `timeframe` buckets, oldest first."""
    out: list[Bar] = []
    group: list[Bar] = []
    key: datetime | None = None
    for bar in bars:
        bucket = timeframe.bucket(bar.t, day_zone)
        if group and bucket != key:
            out.append(_merge(key, group))
            group = []
        key = bucket
        group.append(bar)
    if group:
        out.append(_merge(key, group))
    return out


def _merge(t: datetime | None, group: list[Bar]) -> Bar:
    assert t is not None
    volume = sum(b.v for b in group)
    vwap = sum(b.vw * b.v for b in group) / volume if volume else group[-1].c
    return Bar(
        t=t,
        o=group[0].o,
        h=max(b.h for b in group),
        l=min(b.l for b in group),
        c=group[-1].c,
        v=volume,
        n=sum(b.n for b in group),
        vw=round(vwap, 6),
    )


class BadPageToken(ValueError):
    pass


@dataclass(frozen=True)
class PageCursor:
    symbol: str
    t: datetime

    def encode(self, timeframe: TimeFrame) -> str:
        raw = f"{self.symbol}|{timeframe.letter}|{format_nanos(self.t)}"
        return base64.b64encode(raw.encode()).decode()

    @classmethod
    def decode(cls, token: str) -> PageCursor:
        try:
            symbol, _unit, stamp = base64.b64decode(token, validate=True).decode().split("|")
            return cls(symbol, parse_rfc3339(stamp))
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise BadPageToken("invalid page token") from exc


@dataclass
class Page:
    bars: dict[str, list[Bar]]
    next_cursor: PageCursor | None


def paginate(
    series: dict[str, list[Bar]], limit: int, cursor: PageCursor | None, descending: bool = False
) -> Page:
    """One page of `limit` bars from per-symbol, oldest-first series, resuming after `cursor`."""
    items = list(_ordered(series, descending))
    start = 0
    if cursor is not None:
        after = _sort_key(cursor.symbol, cursor.t, descending)
        start = next(
            (i for i, (s, b) in enumerate(items) if _sort_key(s, b.t, descending) > after), len(items)
        )
    chunk = items[start : start + limit]
    page: dict[str, list[Bar]] = {}
    for symbol, bar in chunk:
        page.setdefault(symbol, []).append(bar)
    more = start + limit < len(items)
    last = chunk[-1] if chunk else None
    return Page(page, PageCursor(last[0], last[1].t) if more and last else None)


def _ordered(series: dict[str, list[Bar]], descending: bool) -> Iterator[tuple[str, Bar]]:
    for symbol in sorted(series):
        bars = reversed(series[symbol]) if descending else series[symbol]
        for bar in bars:
            yield symbol, bar


def _sort_key(symbol: str, t: datetime, descending: bool) -> tuple[str, float]:
    stamp = t.timestamp()
    return symbol, -stamp if descending else stamp
