"""Market data on disk: the bundled sample and a cache of imported or fetched bars (one SQLite file).

``load_bars`` is what the core reads through: the cache first, then the bundled sample. Prices are
split- and dividend-adjusted by the source's adjusted close when it has one (``adjust=True``), and the
BarSeries says whether they were. Timestamps are bar starts in ns UTC; daily bars start at midnight
America/New_York, as Alpaca stamps them.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import sqlite3
import time
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import numpy as np

from tape.events.bars import NY_TZ, BarSeries
from tape.events.errors import ConfigError, DataError
from tape.events.timeframes import NS_PER_DAY, parse_timeframe, timeframe_ns

SAMPLE_FILE = Path(__file__).resolve().parent / "sample" / "stocks_daily.csv.gz"
SP500_20_FILE = Path(__file__).resolve().parent / "sample" / "sp500_20_daily.csv.gz"
SAMPLE_TIMEFRAME = "1Day"
COLUMNS = ("open", "high", "low", "close", "volume")


class DatasetInfo(msgspec.Struct, frozen=True):
    """One stored series: what `tape data list` shows."""

    symbol: str
    timeframe: str
    source: str  # "sample", "import", "alpaca"
    rows: int
    first_ts: int
    last_ts: int
    has_adj_close: bool


class BarFrame(msgspec.Struct):
    """Columns of one symbol as numpy arrays, before adjustment."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    adj_close: np.ndarray | None
    source: str


# --------------------------------------------------------------------------- the bundled sample


def _read_bundled(path: Path) -> tuple[list[str], list[list[str]]]:
    """A bundled gzipped CSV's header and rows, as text (the csv module: no pandas to import)."""
    with gzip.open(path, "rt", newline="") as rows:
        header, *body = csv.reader(rows)
    return header, body


def _ny_midnights_ns(days: Iterable[str]) -> np.ndarray:
    """Midnight America/New_York of each YYYY-MM-DD day, in ns UTC (what pandas' tz_localize gives)."""
    zone, seen = ZoneInfo(NY_TZ), {}
    out = []
    for day in days:
        ns = seen.get(day)
        if ns is None:  # whole seconds: exact in ns
            ns = seen[day] = int(dt.datetime.fromisoformat(day).replace(tzinfo=zone).timestamp()) * 10**9
        out.append(ns)
    return np.array(out, dtype=np.int64)


@cache
def _sample() -> dict[str, BarFrame]:
    header, body = _read_bundled(SAMPLE_FILE)  # symbol, date, open, high, low, close, volume, adj_close
    ts = _ny_midnights_ns(row[1] for row in body)
    values = np.array([row[2:] for row in body], dtype=np.float64)
    column = {name: values[:, i] for i, name in enumerate(header[2:])}
    rows_of: dict[str, list[int]] = {}
    for i, row in enumerate(body):
        rows_of.setdefault(row[0], []).append(i)
    out: dict[str, BarFrame] = {}
    for symbol in sorted(rows_of):
        rows = np.array(rows_of[symbol])
        out[symbol] = BarFrame(
            ts=ts[rows],
            **{c: column[c][rows] for c in COLUMNS},
            adj_close=column["adj_close"][rows],
            source="sample",
        )
    return out


@cache
def _sample_symbols() -> frozenset[str]:
    """The sample's symbols from its first column alone (no pandas, no date parsing)."""
    with gzip.open(SAMPLE_FILE, "rt") as rows:
        next(rows)  # the header
        return frozenset(row.split(",", 1)[0] for row in rows)


def sample_symbols() -> list[str]:
    """Symbols of the bundled sample."""
    return sorted(_sample())


@cache
def _sp500_20() -> dict[str, BarFrame]:
    # Adjusted closes only: a bar's open, high and low are its close and its volume is unknown (0), so
    # fills at the next open are fills at the next close and liquidity rules have nothing to read.
    header, body = _read_bundled(SP500_20_FILE)  # Date, then one column of closes per symbol
    ts = _ny_midnights_ns(row[0] for row in body)
    values = np.array([row[1:] for row in body], dtype=np.float64)
    out: dict[str, BarFrame] = {}
    for i, symbol in enumerate(header[1:]):
        close = np.ascontiguousarray(values[:, i])
        out[symbol] = BarFrame(
            ts=ts,
            open=close,
            high=close,
            low=close,
            close=close,
            volume=np.zeros_like(close),
            adj_close=close,  # already adjusted: factor 1, and the series says so
            source="sp500_20",
        )
    return out


class BundledDataset(msgspec.Struct, frozen=True):
    """A dataset shipped inside the package: a name to pass as ``--dataset`` or ``--universe``."""

    name: str
    description: str
    symbols: list[str]
    first_day: str
    last_day: str
    close_only: bool


_BUNDLED = {"sample": _sample, "sp500_20": _sp500_20}
BUNDLED_NAMES = tuple(_BUNDLED)
_DESCRIPTIONS = {
    "sample": "AAPL, GOOG, IBM, MSFT daily OHLCV (Quandl WIKI, public domain)",
    "sp500_20": "20 S&P 500 stocks, daily adjusted closes only (skfolio, BSD-3-Clause)",
}


def bundled_datasets() -> list[BundledDataset]:
    """The datasets shipped with tape (see store/sample/NOTICE.md for origin and licence)."""
    out = []
    for name, frames in _BUNDLED.items():
        series = frames()
        first = min(int(f.ts[0]) for f in series.values())
        last = max(int(f.ts[-1]) for f in series.values())
        out.append(
            BundledDataset(
                name, _DESCRIPTIONS[name], sorted(series), ny_day(first), ny_day(last), name == "sp500_20"
            )
        )
    return out


def bundled_symbols(name: str) -> list[str]:
    """The symbols of one bundled dataset (a ``--universe``); unknown names raise ConfigError."""
    return sorted(_bundled(name))


def _bundled(name: str) -> dict[str, BarFrame]:
    if name not in _BUNDLED:
        raise ConfigError(f"unknown dataset {name!r}; bundled datasets: {', '.join(_BUNDLED)}")
    return _BUNDLED[name]()


# --------------------------------------------------------------------------- the cache file


# One row per stored series: its columns as little-endian float64/int64 BLOBs, a projection of the
# `bars` rows (which stay the record) that reads at memory speed. It is valid only while its
# `updated_ns` equals the series' in `datasets`; a store written before it existed is filled in on
# the first read of each series.
_COLUMNS_TABLE = """CREATE TABLE IF NOT EXISTS bar_columns (
    symbol TEXT, timeframe TEXT, updated_ns INTEGER, rows INTEGER,
    ts BLOB, open BLOB, high BLOB, low BLOB, close BLOB, volume BLOB, adj_close BLOB,
    PRIMARY KEY (symbol, timeframe))"""
_BLOB_COLUMNS = ("ts", *COLUMNS, "adj_close")


# The schema sqlite-utils wrote for earlier stores, spelled out: plain sqlite3 opens the store without
# sqlite-utils' import of pandas.
_STORE_TABLES = (
    """CREATE TABLE IF NOT EXISTS "bars" (
   "symbol" TEXT, "timeframe" TEXT, "ts" INTEGER, "open" REAL, "high" REAL, "low" REAL, "close" REAL,
   "volume" REAL, "adj_close" REAL,
   PRIMARY KEY ("symbol", "timeframe", "ts"))""",
    """CREATE TABLE IF NOT EXISTS "datasets" (
   "symbol" TEXT, "timeframe" TEXT, "source" TEXT, "rows" INTEGER, "first_ts" INTEGER, "last_ts" INTEGER,
   "has_adj_close" INTEGER, "updated_ns" INTEGER,
   PRIMARY KEY ("symbol", "timeframe"))""",
)


def _table_names(db: sqlite3.Connection) -> set[str]:
    return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _db(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    try:
        tables = _table_names(db)
    except sqlite3.DatabaseError as exc:  # a file that is not SQLite, or a damaged one
        db.close()
        raise DataError(f"cannot read market data {path}: {exc} (not a tape market-data file?)") from None
    if "bars" not in tables:
        with db:
            for statement in _STORE_TABLES:
                db.execute(statement)
    return db


def _columns_from_blobs(db: sqlite3.Connection, symbol: str, timeframe: str, updated_ns: int) -> Any:
    """The stored column BLOBs of a series if they are current, else None."""
    if "bar_columns" not in _table_names(db):
        return None
    key = (symbol, timeframe, updated_ns)
    where = "FROM bar_columns WHERE symbol=? AND timeframe=? AND updated_ns=?"
    found = db.execute(f"SELECT rows {where}", key).fetchone()
    if found is None:
        return None
    # One column at a time: only one BLOB is held beside the arrays (all seven at once would double
    # the peak memory of a long series for the moment of the copy).
    columns = {}
    for name in _BLOB_COLUMNS:
        (blob,) = db.execute(f"SELECT {name} {where}", key).fetchone()
        columns[name] = np.frombuffer(blob, dtype="<i8" if name == "ts" else "<f8").astype(
            np.int64 if name == "ts" else np.float64
        )
        del blob
    return columns if all(len(c) == found[0] for c in columns.values()) else None


def _columns_from_rows(db: sqlite3.Connection, symbol: str, timeframe: str) -> dict[str, np.ndarray]:
    rows = db.execute(
        "SELECT ts, open, high, low, close, volume, adj_close FROM bars "
        "WHERE symbol=? AND timeframe=? ORDER BY ts",
        (symbol, timeframe),
    ).fetchall()
    table = np.array(rows, dtype=np.float64).reshape(-1, 7) if rows else np.zeros((0, 7))
    columns = {name: table[:, i] for i, name in enumerate(_BLOB_COLUMNS) if name != "ts"}
    columns["ts"] = np.array([r[0] for r in rows], dtype=np.int64)  # exact: int64 does not survive float64
    return columns


def _save_blobs(
    db: sqlite3.Connection, symbol: str, timeframe: str, updated_ns: int, columns: dict[str, np.ndarray]
) -> None:
    db.execute(_COLUMNS_TABLE)
    db.execute(
        "INSERT OR REPLACE INTO bar_columns VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            symbol,
            timeframe,
            updated_ns,
            len(columns["ts"]),
            *(
                np.ascontiguousarray(columns[c], dtype="<i8" if c == "ts" else "<f8").tobytes()
                for c in _BLOB_COLUMNS
            ),
        ),
    )


def cached_frame(path: Path | None, symbol: str, timeframe: str) -> BarFrame | None:
    """The stored bars of ``symbol`` at ``timeframe`` (None when the store has none)."""
    if path is None or not path.exists():
        return None
    db = _db(path)
    info = db.execute(
        "SELECT source, has_adj_close, updated_ns FROM datasets WHERE symbol=? AND timeframe=?",
        (symbol, timeframe),
    ).fetchone()
    if info is None:
        return None
    columns = _columns_from_blobs(db, symbol, timeframe, info[2])
    if columns is None:
        columns = _columns_from_rows(db, symbol, timeframe)
        db.execute("PRAGMA busy_timeout = 50")  # a busy store is not worth waiting for here
        try:  # a store from before the BLOBs: keep them for the next read
            with db:
                _save_blobs(db, symbol, timeframe, info[2], columns)
        except sqlite3.OperationalError:
            pass  # read-only or busy: this read stands, a later one stores them
    return BarFrame(
        ts=columns["ts"],
        **{c: columns[c] for c in COLUMNS},
        adj_close=columns["adj_close"] if info[1] else None,
        source=info[0],
    )


def store_bars(
    path: Path, symbol: str, timeframe: str, frame: BarFrame, *, replace: bool = True
) -> DatasetInfo:
    """Write one symbol's bars in one transaction (replacing or merging with what is stored)."""
    db = _db(path)
    has_adj = frame.adj_close is not None
    adj = frame.adj_close if frame.adj_close is not None else np.full(frame.ts.shape[0], np.nan)
    records = zip(
        frame.ts.tolist(),
        frame.open.tolist(),
        frame.high.tolist(),
        frame.low.tolist(),
        frame.close.tolist(),
        frame.volume.tolist(),
        adj.tolist(),
        strict=True,
    )
    with db:
        if replace:
            db.execute("DELETE FROM bars WHERE symbol=? AND timeframe=?", (symbol, timeframe))
        db.executemany(
            "INSERT OR REPLACE INTO bars VALUES (?,?,?,?,?,?,?,?,?)",
            ((symbol, timeframe, *r) for r in records),
        )
        first, last, count = db.execute(
            "SELECT min(ts), max(ts), count(*) FROM bars WHERE symbol=? AND timeframe=?", (symbol, timeframe)
        ).fetchone()
        info = DatasetInfo(symbol, timeframe, frame.source, count, first, last, has_adj)
        updated_ns = time.time_ns()
        db.execute(
            "INSERT OR REPLACE INTO datasets VALUES (?,?,?,?,?,?,?,?)",
            (symbol, timeframe, frame.source, count, first, last, int(has_adj), updated_ns),
        )
        # Read back from the rows, so the BLOBs hold exactly what a read of the rows returns.
        _save_blobs(db, symbol, timeframe, updated_ns, _columns_from_rows(db, symbol, timeframe))
    return info


def list_datasets(path: Path | None) -> list[DatasetInfo]:
    """Every series `load_bars` can read: the cache's, then the bundled sample's."""
    out: list[DatasetInfo] = []
    if path is not None and path.exists():
        for row in _db(path).execute(
            "SELECT symbol, timeframe, source, rows, first_ts, last_ts, has_adj_close FROM datasets "
            "ORDER BY symbol, timeframe"
        ):
            out.append(DatasetInfo(row[0], row[1], row[2], row[3], row[4], row[5], bool(row[6])))
    for symbol, frame in _sample().items():
        out.append(
            DatasetInfo(
                symbol, SAMPLE_TIMEFRAME, "sample", len(frame.ts), int(frame.ts[0]), int(frame.ts[-1]), True
            )
        )
    return out


# --------------------------------------------------------------------------- loading


def day_start_ns(day: str, option: str = "date") -> int:
    """Midnight America/New_York of a YYYY-MM-DD day, in ns UTC."""
    try:
        parsed = dt.date.fromisoformat(day)
    except ValueError:
        raise ConfigError(f"{option} expects a date like 2010-01-31, got {day!r}") from None
    import pandas as pd

    return int(pd.Timestamp(parsed).tz_localize(NY_TZ).value)


def load_bars(
    symbol: str,
    *,
    data_path: Path | None = None,
    timeframe: str = SAMPLE_TIMEFRAME,
    start: str | None = None,
    end: str | None = None,
    adjust: bool = True,
    dataset: str = "",
) -> BarSeries:
    """One symbol's bars, optionally limited to [start, end] days.

    ``dataset`` "" reads the cache, then the bundled sample; the name of a bundled dataset reads that
    dataset only (see :func:`bundled_datasets`).
    """
    parse_timeframe(timeframe)
    symbol = symbol.strip().upper()
    frame = _find_frame(symbol, timeframe, data_path, dataset)
    return series_from_frame(symbol, timeframe, frame, start=start, end=end, adjust=adjust)


def series_from_frame(
    symbol: str,
    timeframe: str,
    frame: BarFrame,
    *,
    start: str | None = None,
    end: str | None = None,
    adjust: bool = True,
) -> BarSeries:
    """The bars of ``frame`` within [start, end] days, adjusted by its adjusted close when asked:
    what :func:`load_bars` returns for a stored frame (and the Python API for a DataFrame)."""
    lo = day_start_ns(start, "--start") if start else None
    hi = day_start_ns(end, "--end") + NS_PER_DAY - 1 if end else None
    if lo is not None and hi is not None and lo > hi:
        raise ConfigError(f"--start {start} is after --end {end}")
    first = 0 if lo is None else int(np.searchsorted(frame.ts, lo, side="left"))
    stop = len(frame.ts) if hi is None else int(np.searchsorted(frame.ts, hi, side="right"))
    if first >= stop:
        span = f"{ny_day(frame.ts[0])} to {ny_day(frame.ts[-1])}" if len(frame.ts) else "no bars"
        raise DataError(
            f"{symbol}: no bars between {start or 'the start'} and {end or 'the end'} (data: {span})"
        )
    cols = {c: getattr(frame, c)[first:stop] for c in COLUMNS}
    adjusted = adjust and frame.adj_close is not None
    if adjusted:
        assert frame.adj_close is not None
        factor = frame.adj_close[first:stop] / cols["close"]
        for c in ("open", "high", "low", "close"):
            cols[c] = cols[c] * factor
        cols["volume"] = cols["volume"] / factor
    return BarSeries.from_arrays(
        symbol,
        timeframe,
        frame.ts[first:stop],
        cols["open"],
        cols["high"],
        cols["low"],
        cols["close"],
        cols["volume"],
        source=frame.source,
        adjusted=adjusted,
    )


def _find_frame(symbol: str, timeframe: str, data_path: Path | None, dataset: str) -> BarFrame:
    if dataset:
        frames = _bundled(dataset)
        if timeframe != SAMPLE_TIMEFRAME:
            raise ConfigError(f"dataset {dataset} holds daily bars only (1Day), not {timeframe}")
        if symbol not in frames:
            have = ", ".join(sorted(frames))
            raise DataError(f"unknown symbol {symbol!r} in dataset {dataset} (has: {have})")
        return frames[symbol]
    frame = cached_frame(data_path, symbol, timeframe)
    if frame is None and timeframe == SAMPLE_TIMEFRAME:
        frame = _sample().get(symbol)
    if frame is None:
        frame = _resampled(data_path, symbol, timeframe)
    if frame is None and (stored := stored_timeframes(data_path, symbol)):
        raise DataError(
            f"{symbol} has no {timeframe} bars and none can be built from its stored "
            f"{', '.join(stored)} bars (a coarser bar size must be a whole multiple of a stored one and "
            f"divide a day); pass --timeframe {stored[0]} or a multiple of it"
        )
    if frame is None:
        known = sorted({d.symbol for d in list_datasets(data_path) if d.timeframe == timeframe})
        elsewhere = [n for n in BUNDLED_NAMES if timeframe == SAMPLE_TIMEFRAME and symbol in _bundled(n)]
        hint = f"; bundled dataset {elsewhere[0]} has it (pass --dataset {elsewhere[0]})" if elsewhere else ""
        raise DataError(
            f"unknown symbol {symbol!r} at {timeframe}: no stored data (have: {', '.join(known) or 'none'}); "
            f"add it with `tape data import FILE --symbol S` or `tape data fetch S`{hint}"
        )
    return frame


def stored_timeframes(data_path: Path | None, symbol: str) -> list[str]:
    """The timeframes ``symbol`` is stored at (cache and bundled sample), finest first."""
    found = set()
    if data_path is not None and data_path.exists():
        rows = _db(data_path).execute("SELECT timeframe FROM datasets WHERE symbol=?", (symbol,))
        found = {row[0] for row in rows}
    if symbol in _sample_symbols():  # without parsing the sample: a stored series never needs it
        found.add(SAMPLE_TIMEFRAME)
    return sorted(found, key=timeframe_ns)


def choose_timeframe(symbols: Iterable[str], data_path: Path | None, dataset: str = "") -> str:
    """The timeframe to read when none is given: the only one the symbols are all stored at.

    A symbol stored nowhere reads as the sample's 1Day (its error then comes from loading); several
    shared timeframes are a ConfigError that lists them.
    """
    if dataset:
        return SAMPLE_TIMEFRAME
    shared: set[str] | None = None
    for symbol in dict.fromkeys(s.strip().upper() for s in symbols if s.strip()):
        have = set(stored_timeframes(data_path, symbol))
        if have:
            shared = have if shared is None else shared & have
    if not shared:
        return SAMPLE_TIMEFRAME
    if len(shared) == 1:
        return next(iter(shared))
    choices = ", ".join(sorted(shared, key=timeframe_ns))
    raise ConfigError(f"stored at several bar sizes ({choices}); pick one with --timeframe")


def _resampled(data_path: Path | None, symbol: str, timeframe: str) -> BarFrame | None:
    """``timeframe`` bars built from the coarsest finer stored series that divides it, if any."""
    from tape.store.resample import can_resample, resample_columns

    finer = [tf for tf in stored_timeframes(data_path, symbol) if can_resample(tf, timeframe)]
    if not finer:
        return None
    stored = cached_frame(data_path, symbol, finer[-1])
    if stored is None or not len(stored.ts):
        return None
    columns = {c: getattr(stored, c) for c in (*COLUMNS, "adj_close")}
    ts, out = resample_columns(stored.ts, columns, symbol, timeframe)
    return BarFrame(
        ts=ts,
        **{c: out[c] for c in COLUMNS},
        adj_close=out["adj_close"],
        source=f"{stored.source}, resampled from {finer[-1]}",
    )


def load_many(symbols: Iterable[str], **options: Any) -> list[BarSeries]:
    """:func:`load_bars` for several symbols (upper-cased, duplicates dropped, order kept)."""
    unique = list(dict.fromkeys(s.strip().upper() for s in symbols if s.strip()))
    return [load_bars(s, **options) for s in unique]


def ny_day(ts: int) -> str:
    """The New York calendar day of a UTC nanosecond timestamp, as YYYY-MM-DD."""
    import pandas as pd

    return pd.Timestamp(int(ts), tz="UTC").tz_convert(NY_TZ).strftime("%Y-%m-%d")
