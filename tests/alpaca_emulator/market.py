"""The emulator's market: seeded bars, the latest trade and quote per symbol, and the current price.

Symbols containing a `/` (`BTC/USD`) are crypto, everything else is a US stock. All methods are
called with the emulator's state lock held by the caller or are safe on their own (they only touch
dicts of immutable records and take the lock themselves).
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .timeutil import format_ts, now, to_utc


def is_crypto(symbol: str) -> bool:
    return "/" in symbol


@dataclass(frozen=True)
class Bar:
    t: datetime
    o: float
    h: float
    l: float  # noqa: E741 (Alpaca's field name)
    c: float
    v: float
    n: int = 0
    vw: float = 0.0

    def wire(self) -> dict[str, Any]:
        return {
            "t": format_ts(self.t),
            "o": self.o,
            "h": self.h,
            "l": self.l,
            "c": self.c,
            "v": self.v,
            "n": self.n,
            "vw": self.vw,
        }


@dataclass(frozen=True)
class Trade:
    t: datetime
    p: float
    s: float
    i: int

    def wire(self, crypto: bool) -> dict[str, Any]:
        if crypto:
            return {"t": format_ts(self.t), "p": self.p, "s": self.s, "i": self.i, "tks": "B"}
        return {"t": format_ts(self.t), "x": "V", "p": self.p, "s": self.s, "c": ["@"], "i": self.i, "z": "C"}


@dataclass(frozen=True)
class Quote:
    t: datetime
    bp: float
    bs: float
    ap: float
    as_: float

    def wire(self, crypto: bool) -> dict[str, Any]:
        if crypto:
            return {"t": format_ts(self.t), "bp": self.bp, "bs": self.bs, "ap": self.ap, "as": self.as_}
        return {
            "t": format_ts(self.t),
            "ax": "V",
            "ap": self.ap,
            "as": self.as_,
            "bx": "V",
            "bp": self.bp,
            "bs": self.bs,
            "c": ["R"],
            "z": "C",
        }


_ROW_FIELDS = ("t", "o", "h", "l", "c", "v", "n", "vw")
_COLUMN_ALIASES = {
    "timestamp": "t",
    "ts": "t",
    "time": "t",
    "open": "o",
    "high": "h",
    "low": "l",
    "close": "c",
    "volume": "v",
    "trade_count": "n",
    "vwap": "vw",
}


def rows_to_bars(rows: Any) -> list[Bar]:
    """Seed rows -> Bars. Accepts tuples `(ts, o, h, l, c, v[, n, vw])`, dicts with Alpaca's short keys
    or long names, or a pandas DataFrame (OHLCV columns, timestamps in a column or the index)."""
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):
        rows = _frame_rows(rows)
    bars = []
    for row in rows:
        if isinstance(row, dict):
            fields = {_COLUMN_ALIASES.get(k, k): v for k, v in row.items()}
        else:
            fields = dict(zip(_ROW_FIELDS, row, strict=False))
        o, h, l, c = (float(fields[k]) for k in "ohlc")  # noqa: E741
        v = float(fields.get("v", 0) or 0)
        vw = fields.get("vw")
        bars.append(
            Bar(
                t=to_utc(fields["t"]),
                o=o,
                h=h,
                l=l,
                c=c,
                v=v,
                n=int(fields.get("n") or 1),
                vw=float(vw) if vw else round((h + l + c) / 3, 6),
            )
        )
    return bars


def _frame_rows(frame: Any) -> Iterable[dict[str, Any]]:
    frame = frame.rename(
        columns={c: _COLUMN_ALIASES.get(str(c).lower(), str(c).lower()) for c in frame.columns}
    )
    if "t" not in frame.columns:
        frame = frame.reset_index()
        frame = frame.rename(columns={frame.columns[0]: "t"})
    return frame.to_dict("records")


class Market:
    """Bars, trades and quotes keyed by symbol, plus price listeners (the broker, the streams)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._bars: dict[str, list[Bar]] = {}
        self._trades: dict[str, Trade] = {}
        self._quotes: dict[str, Quote] = {}
        self._trade_ids = 0

    # -- seeding ----------------------------------------------------------------------------------
    def add_bars(self, symbol: str, bars: list[Bar]) -> None:
        """Merge bars into the symbol's series (a bar at an existing timestamp replaces it)."""
        with self._lock:
            by_time = {bar.t: bar for bar in self._bars.get(symbol, [])}
            by_time.update({bar.t: bar for bar in bars})
            self._bars[symbol] = [by_time[t] for t in sorted(by_time)]

    def record_trade(self, symbol: str, price: float, size: float = 100, ts: datetime | None = None) -> Trade:
        with self._lock:
            self._trade_ids += 1
            trade = Trade(t=ts or now(), p=float(price), s=float(size), i=self._trade_ids)
            self._trades[symbol] = trade
            return trade

    def set_quote(
        self,
        symbol: str,
        bid: float,
        ask: float,
        bid_size: float = 1,
        ask_size: float = 1,
        ts: datetime | None = None,
    ) -> Quote:
        with self._lock:
            quote = Quote(
                t=ts or now(), bp=float(bid), bs=float(bid_size), ap=float(ask), as_=float(ask_size)
            )
            self._quotes[symbol] = quote
            return quote

    # -- reading ----------------------------------------------------------------------------------
    def bars(self, symbol: str, start: datetime | None = None, end: datetime | None = None) -> list[Bar]:
        """Seeded bars of `symbol` with start <= t <= end (either bound optional), oldest first."""
        with self._lock:
            series = self._bars.get(symbol, [])
            times = [bar.t for bar in series]
            lo = bisect.bisect_left(times, start) if start else 0
            hi = bisect.bisect_right(times, end) if end else len(series)
            return series[lo:hi]

    def latest_bar(self, symbol: str) -> Bar | None:
        with self._lock:
            series = self._bars.get(symbol)
            return series[-1] if series else None

    def latest_trade(self, symbol: str) -> Trade | None:
        """The last recorded trade, or else one at the last bar's close (a real feed always has one)."""
        with self._lock:
            if symbol in self._trades:
                return self._trades[symbol]
            bar = self.latest_bar(symbol)
            return Trade(t=bar.t, p=bar.c, s=bar.v or 1, i=0) if bar else None

    def latest_quote(self, symbol: str) -> Quote | None:
        """The last quote set, or else a zero-spread quote at the latest trade."""
        with self._lock:
            if symbol in self._quotes:
                return self._quotes[symbol]
            trade = self.latest_trade(symbol)
            return Quote(t=trade.t, bp=trade.p, bs=1, ap=trade.p, as_=1) if trade else None

    def price(self, symbol: str) -> float | None:
        """The current price: the latest trade (or the last bar's close); None if nothing is known."""
        trade = self.latest_trade(symbol)
        return trade.p if trade else None

    def symbols(self) -> set[str]:
        with self._lock:
            return set(self._bars) | set(self._trades) | set(self._quotes)
