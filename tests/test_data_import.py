"""`tape data import` of your own files: time zones, bar sizes, symbols, and what it may replace."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import TapeRunner, assert_clean_failure


def _bars(stamps: pd.DatetimeIndex, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, len(stamps))))
    return pd.DataFrame(
        {
            "timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S"),
            "open": close,
            "high": close * 1.001,
            "low": close * 0.999,
            "close": close,
            "volume": 10.0,
        }
    )


def _around_both_2024_dst_changes() -> pd.DatetimeIndex:
    """Naive minute stamps over the nights the US clocks change (2024-03-10 and 2024-11-03)."""
    spring = pd.date_range("2024-03-10 00:00", "2024-03-10 04:00", freq="1min")
    autumn = pd.date_range("2024-11-03 00:00", "2024-11-03 03:00", freq="1min")
    return spring.append(autumn)


def _stored(tape: TapeRunner, symbol: str) -> list[dict]:
    return [json.loads(line) for line in tape("data", "list", "--json").stdout.splitlines() if symbol in line]


def _stored_ts(tmp_path: Path, symbol: str, timeframe: str) -> np.ndarray:
    from tape.store.market import load_bars

    return load_bars(symbol, data_path=tmp_path / "tape-data.db", timeframe=timeframe).ts


@pytest.fixture
def crypto_csv(tmp_path: Path) -> Path:
    path = tmp_path / "btc.csv"
    _bars(_around_both_2024_dst_changes()).to_csv(path, index=False)
    return path


def test_a_naive_24_7_minute_file_imports_with_tz_utc(
    tape: TapeRunner, tmp_path: Path, crypto_csv: Path
) -> None:
    result = tape("data", "import", str(crypto_csv), "--symbol", "XBT", "--tz", "UTC")
    assert result.returncode == 0, result.stderr
    assert "imported 422 1Min bars of XBT" in result.stdout
    ts = _stored_ts(tmp_path, "XBT", "1Min")
    assert ts[0] == pd.Timestamp("2024-03-10 00:00", tz="UTC").value
    assert np.all(np.diff(ts[:241]) == 60_000_000_000)  # no hole where New York skips an hour


def test_a_crypto_pairs_naive_intraday_rows_default_to_utc_and_the_rule_is_printed(
    tape: TapeRunner, tmp_path: Path, crypto_csv: Path
) -> None:
    result = tape("data", "import", str(crypto_csv), "--symbol", "btc/usd")
    assert result.returncode == 0, result.stderr
    assert "timestamps read as UTC (a crypto pair's intraday rows default to UTC" in result.stdout
    assert "bar size 1Min inferred from the spacing" in result.stdout
    ts = _stored_ts(tmp_path, "BTC/USD", "1Min")
    assert ts[-1] == pd.Timestamp("2024-11-03 03:00", tz="UTC").value


def test_the_dst_gap_error_names_the_line_and_the_zone(tape: TapeRunner, crypto_csv: Path) -> None:
    # Line 1 is the header, line 2 is 00:00: 02:00 (skipped in New York) is line 122.
    result = tape("data", "import", str(crypto_csv), "--symbol", "XBT")
    assert_clean_failure(result, "line 122: 2024-03-10 02:00:00 does not exist in America/New_York", "--tz")
    assert result.returncode == 2
    assert _stored(tape, "XBT") == []


def test_a_repeated_autumn_hour_is_called_ambiguous(tape: TapeRunner, tmp_path: Path) -> None:
    path = tmp_path / "autumn.csv"
    _bars(pd.date_range("2024-11-03 00:00", "2024-11-03 03:00", freq="1min")).to_csv(path, index=False)
    result = tape("data", "import", str(path), "--symbol", "XBT")
    assert_clean_failure(result, "line 62: 2024-11-03 01:00:00 is ambiguous in America/New_York", "--tz")


def test_an_unknown_zone_is_refused(tape: TapeRunner, crypto_csv: Path) -> None:
    result = tape("data", "import", str(crypto_csv), "--symbol", "XBT", "--tz", "Mars/Olympus")
    assert_clean_failure(result, "unknown time zone 'Mars/Olympus'")


def test_a_stock_files_naive_daily_dates_are_new_york_midnights(tape: TapeRunner, tmp_path: Path) -> None:
    path = tmp_path / "xyz.csv"
    _bars(pd.bdate_range("2024-03-01", "2024-03-29")).assign(timestamp=lambda f: f.timestamp.str[:10]).to_csv(
        path, index=False
    )
    result = tape("data", "import", str(path), "--symbol", "XYZ")
    assert result.returncode == 0, result.stderr
    assert "timestamps read as America/New_York" in result.stdout
    assert "imported 21 1Day bars of XYZ" in result.stdout
    ts = _stored_ts(tmp_path, "XYZ", "1Day")
    assert ts[0] == pd.Timestamp("2024-03-01", tz="America/New_York").value
    assert ts[-1] == pd.Timestamp("2024-03-29", tz="America/New_York").value


def test_a_stock_files_naive_intraday_times_are_new_york_across_the_dst_change(
    tape: TapeRunner, tmp_path: Path
) -> None:
    days = [pd.date_range(f"{d} 09:30", f"{d} 15:59", freq="1min") for d in ("2024-03-08", "2024-03-11")]
    path = tmp_path / "xyz.csv"
    _bars(days[0].append(days[1])).to_csv(path, index=False)
    assert tape("data", "import", str(path), "--symbol", "XYZ").returncode == 0
    ts = _stored_ts(tmp_path, "XYZ", "1Min")
    assert ts[0] == pd.Timestamp("2024-03-08 14:30", tz="UTC").value  # EST
    assert ts[390] == pd.Timestamp("2024-03-11 13:30", tz="UTC").value  # EDT


@pytest.mark.parametrize(
    ("freq", "timeframe"), [("1min", "1Min"), ("5min", "5Min"), ("1h", "1Hour"), ("1D", "1Day")]
)
def test_the_bar_size_is_inferred_from_the_spacing(
    tape: TapeRunner, tmp_path: Path, freq: str, timeframe: str
) -> None:
    stamps = pd.date_range("2024-01-02", periods=200, freq=freq).delete([50, 51, 120])  # holes do not matter
    path = tmp_path / "bars.parquet"
    _bars(stamps).to_parquet(path)
    result = tape("data", "import", str(path), "--symbol", "ETH/USD")
    assert result.returncode == 0, result.stderr
    assert f"imported 197 {timeframe} bars of ETH/USD" in result.stdout
    assert f"bar size {timeframe} inferred" in result.stdout


def test_a_timeframe_that_contradicts_the_spacing_is_refused(tape: TapeRunner, crypto_csv: Path) -> None:
    result = tape("data", "import", str(crypto_csv), "--symbol", "BTC/USD", "--timeframe", "1Hour")
    assert_clean_failure(result, "--timeframe 1Hour does not match the file", "mostly 1Min apart")
    assert _stored(tape, "BTC/USD") == []


def test_a_given_timeframe_that_matches_is_checked_and_kept(tape: TapeRunner, crypto_csv: Path) -> None:
    result = tape("data", "import", str(crypto_csv), "--symbol", "BTC/USD", "--timeframe", "1Min")
    assert result.returncode == 0, result.stderr
    assert "bar size 1Min checked against the spacing" in result.stdout


# --------------------------------------------------------------------------- what an import may replace


def _daily(tmp_path: Path, name: str, start: str, periods: int, seed: int = 7) -> Path:
    path = tmp_path / name
    frame = _bars(pd.bdate_range(start, periods=periods), seed)
    frame.assign(timestamp=frame.timestamp.str[:10]).to_csv(path, index=False)
    return path


def test_a_shorter_file_does_not_replace_a_stored_series_without_replace(
    tape: TapeRunner, tmp_path: Path
) -> None:
    assert (
        tape("data", "import", str(_daily(tmp_path, "full.csv", "2024-01-01", 86)), "-s", "XYZ").returncode
        == 0
    )
    before = _stored(tape, "XYZ")
    one_row = _daily(tmp_path, "one.csv", "2024-06-03", 1, seed=9)
    result = tape("data", "import", str(one_row), "--symbol", "XYZ")
    assert_clean_failure(
        result,
        "XYZ 1Day is already stored (86 bars, 2024-01-01 to 2024-04-29)",
        "one.csv (1 bar, 2024-06-03 to 2024-06-03) would replace it; pass --replace",
    )
    assert result.returncode == 2
    assert _stored(tape, "XYZ") == before


def test_replace_replaces_and_says_how_many_bars_it_dropped(tape: TapeRunner, tmp_path: Path) -> None:
    tape("data", "import", str(_daily(tmp_path, "full.csv", "2024-01-01", 86)), "-s", "XYZ")
    result = tape(
        "data", "import", str(_daily(tmp_path, "one.csv", "2024-06-03", 1, 9)), "-s", "XYZ", "--replace"
    )
    assert result.returncode == 0, result.stderr
    assert "replaced 86 stored bars" in result.stdout
    assert _stored(tape, "XYZ")[0]["rows"] == 1


def test_a_file_that_only_adds_bars_extends_the_series(tape: TapeRunner, tmp_path: Path) -> None:
    tape("data", "import", str(_daily(tmp_path, "first.csv", "2024-01-01", 60)), "-s", "XYZ")
    result = tape("data", "import", str(_daily(tmp_path, "more.csv", "2024-01-01", 86)), "-s", "XYZ")
    assert result.returncode == 0, result.stderr
    assert _stored(tape, "XYZ")[0]["rows"] == 86


# --------------------------------------------------------------------------- symbols


@pytest.mark.parametrize("symbol", ["BRK.B", "BF-B", "btc/usd", "SPY"])
def test_stock_and_pair_symbols_are_accepted(tape: TapeRunner, tmp_path: Path, symbol: str) -> None:
    result = tape("data", "import", str(_daily(tmp_path, "x.csv", "2024-01-01", 5)), "--symbol", symbol)
    assert result.returncode == 0, result.stderr
    assert f"bars of {symbol.upper()}" in result.stdout


@pytest.mark.parametrize("symbol", ["../../etc/x;DROP TABLE bars", "A B", "AAPL'", "/USD", "TOOLONGSYMBOL1"])
def test_a_string_that_is_not_a_symbol_is_refused_and_nothing_is_stored(
    tape: TapeRunner, tmp_path: Path, symbol: str
) -> None:
    result = tape("data", "import", str(_daily(tmp_path, "x.csv", "2024-01-01", 5)), "--symbol", symbol)
    assert_clean_failure(
        result, f"not a symbol: {symbol!r}", "a stock like AAPL or BRK.B, or a crypto pair like BTC/USD"
    )
    assert result.returncode == 2
    assert not (tmp_path / "tape-data.db").exists()
