"""`tape data import|list|show` and the market-data store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tape.events.errors import DataError
from tape.store.market import bundled_symbols, load_bars, sample_symbols
from tests.conftest import TapeRunner, assert_clean_failure

CSV = """Date,Open,High,Low,Close,Volume
2024-01-02,10,11,9.5,10.5,1000
2024-01-03,10.5,11.5,10,11,1200
2024-01-04,11,11.2,10.1,10.2,900
"""


def fmt_day(ts: int) -> str:
    return pd.Timestamp(int(ts), tz="UTC").tz_convert("America/New_York").strftime("%Y-%m-%d")


def _write(tmp_path: Path, text: str, name: str = "bars.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_sample_has_four_symbols_from_2000_to_2013() -> None:
    assert sample_symbols() == ["AAPL", "GOOG", "IBM", "MSFT"]
    bars = load_bars("AAPL")
    first, last = pd.Timestamp(int(bars.ts[0]), tz="UTC"), pd.Timestamp(int(bars.ts[-1]), tz="UTC")
    assert (first.year, last.year, len(bars)) == (2000, 2013, 3270)


def _day_returns(bars) -> dict[str, float]:  # type: ignore[no-untyped-def]
    days = pd.DatetimeIndex(bars.ts[1:].astype("datetime64[ns]"), tz="UTC").tz_convert("America/New_York")
    return dict(zip(days.strftime("%Y-%m-%d"), bars.close[1:] / bars.close[:-1] - 1, strict=True))


def test_raw_prices_halve_on_the_split_days_and_adjusted_prices_do_not() -> None:
    adjusted, raw = load_bars("AAPL"), load_bars("AAPL", adjust=False)
    assert adjusted.adjusted and not raw.adjusted
    raw_moves, adjusted_moves = _day_returns(raw), _day_returns(adjusted)
    for split_day in ("2000-06-21", "2005-02-28"):
        assert raw_moves[split_day] < -0.45
        assert abs(adjusted_moves[split_day]) < 0.1
    # Real crashes stay: AAPL lost half its value on 2000-09-29 (profit warning).
    assert adjusted_moves["2000-09-29"] < -0.5


def test_start_and_end_are_inclusive_days() -> None:
    bars = load_bars("MSFT", start="2010-01-04", end="2010-01-08")
    assert len(bars) == 5


def test_import_then_list_then_show(tape: TapeRunner, tmp_path: Path) -> None:
    result = tape("data", "import", str(_write(tmp_path, CSV)), "--symbol", "xyz")
    assert result.returncode == 0, result.stderr
    assert "imported 3 1Day bars of XYZ" in result.stdout
    listed = [json.loads(line) for line in tape("data", "list", "--json").stdout.splitlines()]
    assert {"symbol": "XYZ", "source": "import", "rows": 3}.items() <= listed[0].items()
    shown = [json.loads(line) for line in tape("data", "show", "XYZ", "--json").stdout.splitlines()]
    assert [b["close"] for b in shown] == [10.5, 11.0, 10.2]


def test_imported_bars_can_be_backtested(tape: TapeRunner, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    close = 20 * np.exp(np.cumsum(rng.normal(0, 0.02, 300)))
    frame = pd.DataFrame(
        {
            "date": pd.bdate_range("2020-01-01", periods=300).strftime("%Y-%m-%d"),
            "open": close,
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": 1000,
        }
    )
    frame.to_parquet(tmp_path / "xyz.parquet")
    assert tape("data", "import", str(tmp_path / "xyz.parquet"), "--symbol", "XYZ").returncode == 0
    result = tape("backtest", "XYZ", "--json", "--no-files")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["symbols"] == ["XYZ"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            CSV.replace("2024-01-03,10.5,11.5,10,11", "2024-01-03,10.5,11.5,10,"),
            "line 3 has a missing or infinite close",
        ),
        (CSV.replace("2024-01-04", "2024-01-02"), "line 4 is not after the bar before it"),
        (CSV.replace("10.5,11.5,10,11,1200", "10.5,10.8,10,11,1200"), "line 3 has high below open or close"),
        (CSV.replace("11,11.2,10.1,10.2,900", "11,11.2,10.3,10.2,900"), "line 4 has low above open or close"),
        (CSV.replace("1200", "-5"), "line 3 has negative volume"),
        ("Date,Open,High,Low,Volume\n2024-01-02,1,1,1,1\n", "no close column"),
        ("", "cannot read it as CSV"),
    ],
)
def test_a_bad_file_is_refused_by_line_and_nothing_is_imported(
    tape: TapeRunner, tmp_path: Path, text: str, needle: str
) -> None:
    result = tape("data", "import", str(_write(tmp_path, text)), "--symbol", "BAD")
    assert_clean_failure(result, needle)
    listed = tape("data", "list", "--json").stdout
    assert '"BAD"' not in listed


def test_a_missing_file_is_refused(tape: TapeRunner, tmp_path: Path) -> None:
    assert_clean_failure(tape("data", "import", str(tmp_path / "nope.csv"), "--symbol", "X"), "no such file")


def test_show_of_an_unknown_symbol(tape: TapeRunner) -> None:
    assert_clean_failure(tape("data", "show", "NOPE"), "unknown symbol 'NOPE'")


def test_the_sp500_20_dataset_has_twenty_stocks_from_1990_to_2022() -> None:
    symbols = bundled_symbols("sp500_20")
    assert len(symbols) == 20 and {"AAPL", "XOM", "JPM", "UNH"} <= set(symbols)
    xom = load_bars("XOM", dataset="sp500_20")
    assert len(xom) == 8313 and xom.source == "sp500_20" and xom.adjusted
    assert fmt_day(xom.ts[0]) == "1990-01-02" and fmt_day(xom.ts[-1]) == "2022-12-28"
    # Adjusted closes only: each bar is flat at its close and has no volume.
    assert np.array_equal(xom.open, xom.close) and np.array_equal(xom.high, xom.low)
    assert float(xom.volume.max()) == 0.0


def test_a_dataset_is_read_only_when_named() -> None:
    sample_aapl = load_bars("AAPL")
    universe_aapl = load_bars("AAPL", dataset="sp500_20")
    assert sample_aapl.source == "sample" and universe_aapl.source == "sp500_20"
    with pytest.raises(DataError, match="pass --dataset sp500_20"):
        load_bars("XOM")


def test_backtest_reads_a_bundled_dataset(tape: TapeRunner) -> None:
    result = tape("backtest", "XOM", "CVX", "--dataset", "sp500_20", "--start", "2015-01-01", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["total_trades"] > 0 and {t["symbol"] for t in report["trades"]} <= {"XOM", "CVX"}


def test_an_unknown_dataset_is_refused(tape: TapeRunner) -> None:
    assert_clean_failure(tape("backtest", "AAPL", "--dataset", "sp600"), "unknown dataset 'sp600'")
