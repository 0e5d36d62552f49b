"""Your own bars from a CSV or Parquet file: columns found by name, time zone and bar size settled,
every row checked, and an existing series changed only when that is what the user asked for.

Naive timestamps (no offset written) are read in ``--tz`` when it is given. Otherwise a crypto pair's
intraday rows are UTC (pairs trade around the clock and data vendors stamp them in UTC) and anything
else is America/New_York (the exchange's zone; a daily row's date is midnight there, as Alpaca stamps
it). The bar size is the most common spacing between rows; ``--timeframe`` is checked against it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
import numpy as np
import pandas as pd

from tape.events.bars import NY_TZ, find_bad_bar
from tape.events.errors import ConfigError, DataError
from tape.events.symbols import is_pair, normalise_symbol
from tape.events.timeframes import NS_PER_DAY, NS_PER_MINUTE, is_intraday, parse_timeframe, timeframe_ns
from tape.store.market import COLUMNS, BarFrame, DatasetInfo, cached_frame, ny_day, store_bars

_ALIASES = {
    "ts": ("timestamp", "datetime", "date", "time", "t"),
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c"),
    "volume": ("volume", "vol", "v"),
    "adj_close": ("adj close", "adj_close", "adjclose", "adjusted_close", "adjusted close"),
}


class ImportResult(msgspec.Struct, frozen=True):
    """What an import stored and which rules it applied (printed so nothing is silently assumed)."""

    info: DatasetInfo
    zone_note: str  # how naive timestamps were read, "" when the file carries offsets
    timeframe_note: str  # "inferred from the spacing" or "checked against the spacing"
    replaced: int  # stored bars dropped by --replace (0 when the series was new or only grew)


def timeframe_of_spacing(spacing_ns: int) -> str:
    """The timeframe name of a spacing between bars (``60e9`` -> ``"1Min"``); ConfigError if none fits."""
    week = 7 * NS_PER_DAY
    for unit, size in (
        ("Week", week),
        ("Day", NS_PER_DAY),
        ("Hour", 60 * NS_PER_MINUTE),
        ("Min", NS_PER_MINUTE),
    ):
        if spacing_ns > 0 and spacing_ns % size == 0:
            return f"{spacing_ns // size}{unit}"
    raise DataError(f"bars {spacing_ns / 1e9:g} s apart are not a whole number of minutes")


def infer_spacing(wall_ns: np.ndarray) -> int:
    """The most common positive gap between consecutive rows (the smallest one on a tie), 0 if none."""
    gaps = np.diff(wall_ns)
    gaps = gaps[gaps > 0]
    if gaps.size == 0:
        return 0
    values, counts = np.unique(gaps, return_counts=True)
    return int(values[np.argmax(counts)])  # np.unique sorts, argmax takes the first: the smallest


def _zone(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"--tz: unknown time zone {tz!r} (use an IANA name like UTC or Europe/London)"
        ) from None
    return tz


def _read_table(path: Path) -> tuple[pd.DataFrame, int]:
    if not path.exists():
        raise DataError(f"no such file: {path}")
    parquet = path.suffix.lower() in (".parquet", ".pq")
    try:
        frame, first_line = (pd.read_parquet(path), 1) if parquet else (pd.read_csv(path), 2)
    except Exception as exc:  # pandas raises many types for unreadable input
        raise DataError(f"{path.name}: cannot read it as {'Parquet' if parquet else 'CSV'}: {exc}") from None
    if frame.empty:
        raise DataError(f"{path.name}: no rows")
    return frame, first_line


def _columns(name: str, frame: pd.DataFrame) -> dict[str, Any]:
    lower = {str(c).strip().lower(): c for c in frame.columns}
    found: dict[str, Any] = {}
    for column_name, aliases in _ALIASES.items():
        column = next((lower[a] for a in aliases if a in lower), None)
        if column is None and column_name != "adj_close":
            wanted = "date/timestamp" if column_name == "ts" else column_name
            raise DataError(f"{name}: no {wanted} column (columns: {', '.join(map(str, frame.columns))})")
        found[column_name] = column
    return found


def _parse_stamps(name: str, raw: pd.Series, first_line: int) -> pd.Series:
    try:
        stamps = pd.to_datetime(raw)
    except (ValueError, TypeError):
        try:  # offsets that differ from row to row (a file written across a DST change)
            stamps = pd.to_datetime(raw, utc=True)
        except (ValueError, TypeError) as exc:
            raise DataError(f"{name}: unreadable timestamp: {exc}") from None
    if not pd.api.types.is_datetime64_any_dtype(stamps):
        stamps = pd.to_datetime(raw, utc=True)
    missing = stamps.isna().to_numpy()
    if missing.any():
        raise DataError(f"{name}: line {int(np.flatnonzero(missing)[0]) + first_line}: missing timestamp")
    return stamps


def _localise(path: Path, stamps: pd.Series, zone: str, first_line: int) -> pd.Series:
    """Naive wall times in ``zone``; a time the zone skips or repeats is an error naming its line."""
    local = stamps.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
    bad = local.isna().to_numpy()
    if not bad.any():
        return local
    row = int(np.flatnonzero(bad)[0])
    stamp = stamps.iloc[row]
    # Settling every ambiguous time leaves only the ones the zone skips.
    skipped = pd.isna(pd.Timestamp(stamp).tz_localize(zone, ambiguous=True, nonexistent="NaT"))
    if skipped:
        why = f"does not exist in {zone} (the clocks skip it at the daylight-saving change)"
    else:
        why = f"is ambiguous in {zone} (it happens twice when the clocks go back)"
    raise DataError(
        f"{path.name}: line {row + first_line}: {stamp} {why}; if the file's times are in "
        f"another zone, say which with --tz (e.g. --tz UTC)"
    )


def read_bars_file(
    path: Path, symbol: str, *, timeframe: str | None = None, tz: str | None = None
) -> tuple[BarFrame, int, str, str, str]:
    """Parse a CSV or Parquet file of bars.

    Returns the columns, the file line of row 0 (CSV: 2), the timeframe, and the notes saying how the
    time zone and the timeframe were settled.
    """
    frame, first_line = _read_table(path)
    found = _columns(path.name, frame)
    stamps = _parse_stamps(path.name, frame[found["ts"]], first_line)
    naive = stamps.dt.tz is None
    spacing = infer_spacing(stamps.dt.as_unit("ns").astype("int64").to_numpy())
    if timeframe is None:
        timeframe = timeframe_of_spacing(spacing) if spacing else "1Day"
        timeframe_note = (
            f"bar size {timeframe} inferred from the spacing" if spacing else "one row: 1Day assumed"
        )
    else:
        parse_timeframe(timeframe)
        if spacing and spacing != timeframe_ns(timeframe):
            raise DataError(
                f"{path.name}: --timeframe {timeframe} does not match the file, whose rows are mostly "
                f"{timeframe_of_spacing(spacing)} apart; nothing imported"
            )
        timeframe_note = f"bar size {timeframe} checked against the spacing"
    zone_note = ""
    if naive:
        if tz is not None:
            zone, rule = _zone(tz), "as given by --tz"
        elif is_pair(symbol) and is_intraday(timeframe):
            zone, rule = "UTC", "a crypto pair's intraday rows default to UTC; pass --tz to say otherwise"
        else:
            zone, rule = NY_TZ, "rows without an offset default to New York time; pass --tz to say otherwise"
        stamps = _localise(path, stamps, zone, first_line)
        zone_note = f"timestamps read as {zone} ({rule})"
    elif tz is not None:
        _zone(tz)
        zone_note = f"timestamps carry their own offsets; --tz {tz} not needed"
    bars = _frame_of(frame, found, stamps, source="import")
    return bars, first_line, timeframe, zone_note, timeframe_note


def _frame_of(table: pd.DataFrame, found: dict[str, Any], stamps: pd.Series, *, source: str) -> BarFrame:
    ts = stamps.dt.as_unit("ns").astype("int64").to_numpy()
    cols = {
        name: pd.to_numeric(table[found[name]], errors="coerce").to_numpy(np.float64)
        for name in (*COLUMNS, "adj_close")
        if found.get(name) is not None
    }
    return BarFrame(ts=ts, **{c: cols[c] for c in COLUMNS}, adj_close=cols.get("adj_close"), source=source)


def frame_from_table(table: pd.DataFrame, name: str, *, source: str) -> BarFrame:
    """The bars of an in-memory table whose timestamp column is time-zone aware (the Python API's
    DataFrames): the same column names and parsing as a file, errors naming ``name`` and the row."""
    found = _columns(name, table)
    stamps = _parse_stamps(name, table[found["ts"]], 0)
    if stamps.dt.tz is None:
        raise ConfigError(f"{name}: timestamps without a time zone; say where they are with tz=")
    return _frame_of(table, found, stamps, source=source)


def find_bad_row(frame: BarFrame) -> tuple[int, str] | None:
    """The first row of ``frame`` that breaks a bar rule (adjusted close included), with the rule."""
    problem = find_bad_bar(frame.ts, frame.open, frame.high, frame.low, frame.close, frame.volume)
    if problem is None and frame.adj_close is not None:
        bad_adj = ~(np.isfinite(frame.adj_close) & (frame.adj_close > 0))
        if bad_adj.any():
            problem = (int(np.flatnonzero(bad_adj)[0]), "has a missing or non-positive adjusted close")
    return problem


def _check_rows(path: Path, frame: BarFrame, first_line: int) -> None:
    problem = find_bad_row(frame)
    if problem is not None:
        row, why = problem
        raise DataError(f"{path.name}: line {row + first_line} {why}; nothing imported")


def _kept_rows(stored: BarFrame, new: BarFrame) -> bool:
    """True when every stored bar is in the new file unchanged: the import only adds bars."""
    where = np.searchsorted(new.ts, stored.ts)
    if (where >= len(new.ts)).any() or not np.array_equal(
        new.ts[np.minimum(where, len(new.ts) - 1)], stored.ts
    ):
        return False
    for column in COLUMNS:
        if not np.array_equal(getattr(new, column)[where], getattr(stored, column), equal_nan=True):
            return False
    if (stored.adj_close is None) != (new.adj_close is None):
        return False
    return stored.adj_close is None or np.array_equal(new.adj_close[where], stored.adj_close, equal_nan=True)


def _span(ts: np.ndarray) -> str:
    return f"{len(ts):,} bar{'s' if len(ts) != 1 else ''}, {ny_day(int(ts[0]))} to {ny_day(int(ts[-1]))}"


def import_bars_file(
    path: Path,
    symbol: str,
    *,
    data_path: Path,
    timeframe: str | None = None,
    tz: str | None = None,
    replace: bool = False,
) -> ImportResult:
    """Validate a file of bars and store it as ``symbol``.

    A bad row is reported by its line in the file, and then nothing is written. A series already stored
    at that timeframe may only grow (every stored bar present unchanged) unless ``replace`` is set; the
    refusal says what would be replaced.
    """
    symbol = normalise_symbol(symbol)
    frame, first_line, timeframe, zone_note, timeframe_note = read_bars_file(
        path, symbol, timeframe=timeframe, tz=tz
    )
    _check_rows(path, frame, first_line)
    stored = cached_frame(data_path, symbol, timeframe)
    replaced = 0
    if stored is not None and len(stored.ts) and not _kept_rows(stored, frame):
        if not replace:
            raise DataError(
                f"{symbol} {timeframe} is already stored ({_span(stored.ts)}) and {path.name} "
                f"({_span(frame.ts)}) would replace it; pass --replace to do so; nothing imported"
            )
        replaced = len(stored.ts)
    info = store_bars(data_path, symbol, timeframe, frame)
    return ImportResult(info, zone_note, timeframe_note, replaced)
