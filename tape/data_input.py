"""The ``data`` argument of the Python API: stored symbols, a bundled dataset, or pandas DataFrames.

Symbols and dataset names resolve exactly as the CLI's arguments do (the market-data store, then the
bundled sample). DataFrames go through the parsing and bar rules of `tape data import`, without being
stored: the same bars give the same decisions whichever way they came in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from tape.events.backtest import BacktestConfig
from tape.events.bars import BarSeries
from tape.events.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_FRAME_SYMBOL = "DATA"  # a lone DataFrame without attrs["symbol"] trades under this name
DATAFRAME_SOURCE = "dataframe"  # what a run's data fingerprint records for DataFrame input

Loader = Callable[[BacktestConfig], list[BarSeries]]


class DataInput(NamedTuple):
    """What ``data`` names: the symbols, the bundled dataset to read them from ("" = the store), and,
    for DataFrames, the loader that hands the core their bars instead of the store's."""

    symbols: list[str]
    dataset: str
    loader: Loader | None
    timeframe: str  # the bar size asked for, or the one the data has when none was asked for


def resolve_data(
    data: Any,
    *,
    dataset: str = "",
    tz: str | None = None,
    timeframe: str | None = None,
    data_path: Path | None = None,
) -> DataInput:
    """Interpret ``data``: a symbol, a list of symbols, a bundled dataset name ("sample", "sp500_20"),
    a DataFrame of OHLCV bars, or a dict of them keyed by symbol. Without ``timeframe``, stored symbols
    use their only stored bar size (as ``tape backtest`` does) and DataFrames the spacing of their rows."""
    if isinstance(data, str) or (
        isinstance(data, Sequence) and data and all(isinstance(s, str) for s in data)
    ):
        from tape.store.market import BUNDLED_NAMES, bundled_symbols, choose_timeframe

        if isinstance(data, str) and data in BUNDLED_NAMES:
            if dataset and dataset != data:
                raise ConfigError(f"data {data!r} is a bundled dataset; drop dataset={dataset!r}")
            symbols, dataset = bundled_symbols(data), data
        else:
            symbols = [data] if isinstance(data, str) else list(data)
        return DataInput(symbols, dataset, None, timeframe or choose_timeframe(symbols, data_path, dataset))
    frames = _frames_of(data)
    if frames is None:
        raise ConfigError(
            "data must be a symbol, a list of symbols, a bundled dataset name, a pandas DataFrame of "
            f"OHLCV bars or a dict of them by symbol; got {type(data).__name__}"
        )
    if dataset:
        raise ConfigError(f"dataset={dataset!r} reads a bundled dataset; DataFrame data needs none")
    from tape.events.timeframes import parse_timeframe

    parsed = {symbol: frame_to_bars(frame, symbol, tz=tz) for symbol, frame in frames.items()}
    if timeframe is None:
        from tape.store.bar_files import infer_spacing, timeframe_of_spacing

        spacing = min((infer_spacing(bars.ts) for bars in parsed.values()), default=0)
        timeframe = timeframe_of_spacing(spacing) if spacing else "1Day"
    parse_timeframe(timeframe)
    chosen = timeframe

    def load(config: BacktestConfig) -> list[BarSeries]:
        from tape.store.market import series_from_frame

        return [
            series_from_frame(
                symbol,
                chosen,
                parsed[symbol],
                start=config.start or None,
                end=config.end or None,
                adjust=config.adjust,
            )
            for symbol in config.symbols
        ]

    return DataInput(list(parsed), "", load, chosen)


def _frames_of(data: Any) -> dict[str, pd.DataFrame] | None:
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        symbol = str(data.attrs.get("symbol") or DEFAULT_FRAME_SYMBOL)
        return {symbol.strip().upper(): data}
    if isinstance(data, Mapping) and data and all(isinstance(f, pd.DataFrame) for f in data.values()):
        out: dict[str, pd.DataFrame] = {}
        for key, frame in data.items():
            symbol = str(key).strip().upper()
            if not symbol:
                raise ConfigError("data: a dict of DataFrames needs a non-empty symbol for each")
            out[symbol] = frame
        return out
    return None


def frame_to_bars(frame: pd.DataFrame, symbol: str, *, tz: str | None) -> Any:
    """One DataFrame's bars as the store keeps them (validated by the bar rules of `tape data import`).

    The index must be a DatetimeIndex: tz-aware, or naive with ``tz`` saying where its times are.
    """
    import pandas as pd

    from tape.store.bar_files import find_bad_row, frame_from_table

    where = f"data[{symbol!r}]"
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex):
        raise ConfigError(
            f"{where}: the index must be a DatetimeIndex of bar times, not {type(index).__name__}"
        )
    if len(frame) == 0:
        raise ConfigError(f"{where}: no rows")
    if index.tz is None:
        if tz is None:
            raise ConfigError(
                f"{where}: the index has no time zone; pass tz= (e.g. tz='America/New_York') to say "
                "where its times are"
            )
        try:
            index = index.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
        except Exception as exc:  # pandas and zoneinfo raise several types for an unknown zone
            raise ConfigError(f"tz: unknown time zone {tz!r} ({exc})") from None
    table = frame.reset_index(drop=True)
    clashing = [c for c in table.columns if str(c).strip().lower() in _TIME_NAMES]
    table = table.drop(columns=clashing)  # the index is the bar time: never a second time column
    table.insert(0, "timestamp", index)
    bars = frame_from_table(table, where, source=DATAFRAME_SOURCE)
    problem = find_bad_row(bars)
    if problem is not None:
        row, why = problem
        raise DataError(f"{where}: row {row} ({index[row]}) {why}")
    return bars


_TIME_NAMES = frozenset({"timestamp", "datetime", "date", "time", "t"})


def data_store(path: str | Path | None) -> Path:
    """The market-data store the CLI would read (``--data``, else $TAPE_DATA, else ./tape-data.db)."""
    import os

    if path is not None:
        return Path(path)
    return Path(os.environ.get("TAPE_DATA", "tape-data.db"))
