"""Fold a run's events into its report: trades, equity marks, counts and metrics.

The backtest command prints the fold of the events it has just appended, and `tape replay` prints the
fold of the events it reads back from the log: one function, so the two agree to the last digit.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from functools import lru_cache
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from tape.events.costs import cents
from tape.events.metrics import Mark, Trade, compute_metrics
from tape.events.schema import (
    KIND_OF,
    Alert,
    BorrowFeeCharged,
    EquityMarked,
    Event,
    PositionClosed,
    RiskRejected,
    RunEnded,
    RunStarted,
)
from tape.events.timeframes import is_intraday, marks_per_year

_NY = ZoneInfo("America/New_York")


class RunReport(msgspec.Struct, kw_only=True):
    """What a run amounted to, rebuilt from its events alone."""

    run_id: str
    mode: str
    strategy: str
    params: dict[str, Any]
    symbols: list[str]
    timeframe: str
    config: dict[str, Any]
    adjusted: bool
    start_ts: int
    end_ts: int
    status: str
    metrics: dict[str, Any]
    trades: list[Trade]
    marks: list[Mark]
    counts: dict[str, int]  # events by kind
    rejections: dict[str, int]  # risk rejections by rule
    alerts: list[str]


_FOLDED = frozenset(
    {PositionClosed, EquityMarked, RiskRejected, Alert, RunStarted, RunEnded, BorrowFeeCharged}
)
_CHUNK = 8192


def _folded(events: Iterable[Event], by_class: Counter[type]) -> Iterator[Event]:
    """The events :func:`fold_run` reads, while every event is counted by class.

    Chunked, so a long run (most of its events signals, orders and fills) is counted and filtered at
    C speed, and a log read as a stream is never loaded whole."""
    it = iter(events)
    while chunk := list(islice(it, _CHUNK)):
        by_class.update(map(type, chunk))
        yield from [e for e in chunk if e.__class__ in _FOLDED]


def _trade(e: PositionClosed, borrow_cents: int) -> Trade:
    """A closed position as a trade; a short's borrow fees (paid while it was open) come off its P&L."""
    return Trade(
        symbol=e.symbol,
        strategy=e.strategy,
        entry_ts=e.entry_ts,
        entry_price=e.entry_price,
        exit_ts=e.ts,
        exit_price=e.exit_price,
        qty=e.qty,
        gross_pnl=e.gross_pnl,
        commission=e.commission,
        pnl=(cents(e.net_pnl) - borrow_cents) / 100.0 if borrow_cents else e.net_pnl,
        exit_reason=e.exit_reason,
        slippage=e.slippage,
        side="short" if e.qty < 0 else "long",
        borrow_fee=borrow_cents / 100.0,
    )


def _mark(e: EquityMarked) -> Mark:
    return Mark(
        ts=e.ts,
        equity=e.equity,
        drawdown=e.drawdown,
        drawdown_pct=e.drawdown_pct,
        bars=e.bars,
        bars_in_market=e.bars_in_market,
    )


class _Fold:
    """What :func:`fold_run` gathers while it reads a run's events."""

    def __init__(self) -> None:
        self.started: RunStarted | None = None
        self.ended: RunEnded | None = None
        self.trades: list[Trade] = []
        self.marks: list[Mark] = []
        self.rejections: Counter[str] = Counter()
        self.alerts: list[str] = []
        self.borrow: dict[str, int] = {}  # symbol -> borrow fees (cents) of the short open in it

    def read(self, event: Any) -> None:
        cls = event.__class__
        if cls is PositionClosed:
            self.trades.append(_trade(event, self.borrow.pop(event.symbol, 0) if event.qty < 0 else 0))
        elif cls is EquityMarked:
            self.marks.append(_mark(event))
        elif cls is BorrowFeeCharged:
            self.borrow[event.symbol] = self.borrow.get(event.symbol, 0) + cents(event.fee)
        elif cls is RiskRejected:
            self.rejections[event.rule] += 1
        elif cls is Alert:
            self.alerts.append(event.message)
        elif cls is RunStarted:
            self.started = event
        elif cls is RunEnded:
            self.ended = event


def fold_run(events: Iterable[Event]) -> RunReport:
    """Rebuild a run's report from its events (in log order). Needs its RunStarted."""
    fold = _Fold()
    by_class: Counter[type] = Counter()
    for event in _folded(events, by_class):
        fold.read(event)
    started, ended, marks = fold.started, fold.ended, fold.marks
    if started is None:
        raise ValueError("the events hold no RunStarted")
    counts: Counter[str] = Counter()
    for cls, n in by_class.items():
        counts[KIND_OF[cls]] += n
    crypto = any("/" in s for s in started.symbols)
    legs = [(leg.first_close, leg.last_close) for leg in ended.benchmark] if ended else []
    metrics = compute_metrics(
        start_equity=float(started.config.get("cash", 0.0)),
        trades=fold.trades,
        marks=marks,
        benchmark=legs,
        periods_per_year=marks_per_year(started.timeframe, crypto=crypto),
    )
    return RunReport(
        run_id=started.run_id,
        mode=started.mode,
        strategy=started.strategy,
        params=dict(started.params),
        symbols=list(started.symbols),
        timeframe=started.timeframe,
        config=dict(started.config),
        adjusted=all(fp.adjusted for fp in started.data) if started.data else False,
        start_ts=started.ts,
        end_ts=ended.ts if ended else (marks[-1].ts if marks else started.ts),
        status=ended.status if ended else "running",
        metrics=metrics,
        trades=fold.trades,
        marks=marks,
        counts=dict(sorted(counts.items())),
        rejections=dict(sorted(fold.rejections.items())),
        alerts=fold.alerts,
    )


@lru_cache(maxsize=1 << 17)  # a run's JSON, CSV and summary format the same trade times again
def market_time(ts: int, timeframe: str) -> str:
    """A bar time as traders read it: the exchange date for daily bars, local time for intraday."""
    moment = dt.datetime.fromtimestamp(ts / 1e9, tz=dt.UTC).astimezone(_NY)
    return moment.isoformat(timespec="minutes") if is_intraday(timeframe) else moment.strftime("%Y-%m-%d")


def price_text(value: float) -> str:
    """A price for people: six significant digits, at least two decimals, trailing zeros dropped
    (``187.5`` -> ``187.50``, ``0.000012345678`` -> ``0.0000123457``). Machine output keeps it exact."""
    if value == 0 or not math.isfinite(value):
        return f"{value:.2f}"
    decimals = max(2, 5 - math.floor(math.log10(abs(value))))
    text = f"{value:,.{decimals}f}"
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction[:2]}{fraction[2:].rstrip('0')}"


_MINUTE_NS, _HOUR_NS = 60_000_000_000, 3_600_000_000_000


def market_times(stamps: Iterable[int], timeframe: str) -> list[str]:
    """:func:`market_time` of many bar times at once: the same text, formatted by numpy. The New York
    offset is looked up once per UTC hour (its changes fall on whole hours); times off the minute take
    the one-by-one path (its rounding to the microsecond decides their minute)."""
    import numpy as np  # here: `tape verify` and `--help` import this module and must not load numpy

    ts = np.fromiter(stamps, dtype=np.int64)
    if not ts.shape[0] or (ts % _MINUTE_NS).any():
        return [market_time(int(t), timeframe) for t in ts]
    hours, where = np.unique(ts // _HOUR_NS, return_inverse=True)
    offsets = [dt.datetime.fromtimestamp(int(h) * 3600, tz=dt.UTC).astimezone(_NY).utcoffset() for h in hours]
    minutes = np.array([int(o.total_seconds()) // 60 if o else 0 for o in offsets], dtype=np.int64)
    local = (ts // _MINUTE_NS + minutes[where]).astype("datetime64[m]")
    if not is_intraday(timeframe):
        return np.datetime_as_string(local, unit="D").tolist()
    suffix = np.array([f"{'-' if m < 0 else '+'}{abs(m) // 60:02d}:{abs(m) % 60:02d}" for m in minutes])
    return np.char.add(np.datetime_as_string(local, unit="m"), suffix[where]).tolist()


def trade_rows(report: RunReport, last: int | None = None) -> list[dict[str, Any]]:
    """Trades as plain rows (JSON output, CSV projection): prices exact, as the log holds them;
    money rounded to the cent. ``last``: only the last that many (numbered as among all)."""
    first = 0 if last is None else max(0, len(report.trades) - last)
    trades = report.trades[first:]
    entries = market_times((t.entry_ts for t in trades), report.timeframe)
    exits = market_times((t.exit_ts for t in trades), report.timeframe)
    return [
        {
            "n": n,
            "symbol": t.symbol,
            "entry_time": entry_time,
            "entry_price": t.entry_price,
            "exit_time": exit_time,
            "exit_price": t.exit_price,
            "qty": t.qty,
            "gross_pnl": round(t.gross_pnl, 2),
            "commission": round(t.commission, 2),
            "pnl": round(t.pnl, 2),
            "exit_reason": t.exit_reason,
            "side": t.side,
            "borrow_fee": round(t.borrow_fee, 2),
        }
        for n, t, entry_time, exit_time in zip(
            range(first + 1, len(report.trades) + 1), trades, entries, exits, strict=True
        )
    ]


def report_json(report: RunReport, rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The one JSON object `tape backtest --json` and `tape replay --json` print (``rows``: its
    :func:`trade_rows`, when already made)."""
    return {
        "run_id": report.run_id,
        "strategy": report.strategy,
        "params": report.params,
        "symbols": report.symbols,
        "timeframe": report.timeframe,
        "adjusted": report.adjusted,
        "start": market_time(report.start_ts, report.timeframe),
        "end": market_time(report.end_ts, report.timeframe),
        **report.metrics,
        "risk_rejections": report.rejections,
        "trades": trade_rows(report) if rows is None else rows,
    }
