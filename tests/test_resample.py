"""Coarser bars built on read from finer stored ones, and which timeframe `backtest SYM` reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import TapeRunner, assert_clean_failure

AGGREGATE = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}


def _minute_bars(symbol: str) -> pd.DataFrame:
    """Random-walk 1Min bars indexed by UTC time: stock sessions across the March DST change, or 24/7."""
    if "/" in symbol:
        index = pd.date_range("2024-03-01", "2024-03-15", freq="1min", inclusive="left", tz="UTC")
    else:
        days = pd.bdate_range("2024-02-20", "2024-03-29")
        index = pd.DatetimeIndex(
            np.concatenate(
                [
                    pd.date_range(f"{d:%Y-%m-%d} 09:30", periods=390, freq="1min", tz="America/New_York")
                    for d in days
                ]
            )
        ).tz_convert("UTC")
    rng = np.random.default_rng(11)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.002, len(index))))
    opens = np.r_[close[0], close[:-1]]
    return pd.DataFrame(
        {
            "open": opens,
            "high": np.maximum(opens, close) * (1 + rng.uniform(0, 0.001, len(index))),
            "low": np.minimum(opens, close) * (1 - rng.uniform(0, 0.001, len(index))),
            "close": close,
            "volume": rng.integers(100, 1000, len(index)).astype(float),
        },
        index=index,
    )


def _pandas_hourly(minutes: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """The same rule with pandas: clock hours in New York for a stock, in UTC for a pair."""
    zone = "UTC" if "/" in symbol else "America/New_York"
    return minutes.tz_convert(zone).resample("1h").agg(AGGREGATE).dropna()


def _save(frame: pd.DataFrame, path: Path) -> Path:
    frame.rename_axis("timestamp").reset_index().assign(
        timestamp=lambda f: f.timestamp.dt.strftime("%Y-%m-%dT%H:%M:%S%z")
    ).to_csv(path, index=False)
    return path


def _backtest(tape: TapeRunner, symbol: str, data: Path, *extra: str) -> dict:
    result = tape(
        "backtest",
        symbol,
        "--param",
        "short=5",
        "--param",
        "long=20",
        "--json",
        "--no-files",
        *extra,
        env={"TAPE_DATA": str(data)},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("symbol", ["XYZ", "BTC/USD"])
def test_a_1hour_backtest_from_stored_1min_bars_equals_one_on_bars_resampled_by_pandas(
    tape: TapeRunner, tmp_path: Path, symbol: str
) -> None:
    minutes = _minute_bars(symbol)
    fine, coarse = tmp_path / "fine.db", tmp_path / "coarse.db"
    tape(
        "data", "import", str(_save(minutes, tmp_path / "m.csv")), "-s", symbol, env={"TAPE_DATA": str(fine)}
    )
    hourly = _save(_pandas_hourly(minutes, symbol), tmp_path / "h.csv")
    imported = tape(
        "data", "import", str(hourly), "-s", symbol, "--timeframe", "1Hour", env={"TAPE_DATA": str(coarse)}
    )
    assert imported.returncode == 0, imported.stderr

    derived = _backtest(tape, symbol, fine, "--timeframe", "1Hour")
    direct = _backtest(tape, symbol, coarse, "--timeframe", "1Hour")
    assert derived["total_trades"] > 3
    assert derived["trades"] == direct["trades"]
    metrics = ("total_pnl", "return_pct", "sharpe", "max_drawdown_pct", "final_equity", "bars")
    assert {k: derived[k] for k in metrics} == {k: direct[k] for k in metrics}


def test_the_run_records_its_bars_as_resampled(tape: TapeRunner, tmp_path: Path) -> None:
    tape("data", "import", str(_save(_minute_bars("XYZ"), tmp_path / "m.csv")), "-s", "XYZ")
    shown = tape("data", "show", "XYZ", "--timeframe", "1Hour")
    assert "import, resampled from 1Min" in shown.stdout
    run = _backtest(tape, "XYZ", tmp_path / "tape-data.db", "--timeframe", "1Hour")
    started = tape("log", "show", "--kind", "run_started", "--json").stdout
    assert run["run_id"] in started and '"source":"import, resampled from 1Min"' in started


def test_backtest_reads_the_only_stored_timeframe(tape: TapeRunner, tmp_path: Path) -> None:
    tape("data", "import", str(_save(_minute_bars("XYZ"), tmp_path / "m.csv")), "-s", "XYZ")
    run = _backtest(tape, "XYZ", tmp_path / "tape-data.db")
    assert run["timeframe"] == "1Min"


def test_backtest_lists_the_choices_when_several_timeframes_are_stored(
    tape: TapeRunner, tmp_path: Path
) -> None:
    minutes = _minute_bars("XYZ")
    tape("data", "import", str(_save(minutes, tmp_path / "m.csv")), "-s", "XYZ")
    tape("data", "import", str(_save(_pandas_hourly(minutes, "XYZ"), tmp_path / "h.csv")), "-s", "XYZ")
    result = tape("backtest", "XYZ", "--no-files")
    assert_clean_failure(result, "stored at several bar sizes (1Min, 1Hour); pick one with --timeframe")


def test_a_timeframe_that_cannot_be_built_says_what_is_stored(tape: TapeRunner, tmp_path: Path) -> None:
    tape("data", "import", str(_save(_minute_bars("XYZ"), tmp_path / "m.csv")), "-s", "XYZ")
    result = tape("backtest", "XYZ", "--timeframe", "7Min", "--no-files")
    assert_clean_failure(result, "XYZ has no 7Min bars", "stored 1Min bars")
