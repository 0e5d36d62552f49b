"""Numeric options are finite and bounded, and a --data file must be market data: one clear line,
exit 2, and nothing written."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.conftest import TapeRunner, assert_clean_failure


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--cash", "inf", "Invalid value for '--cash': must be a finite number, got inf"),
        ("--cash", "nan", "Invalid value for '--cash': must be a finite number, got nan"),
        ("--cash", "1e400", "Invalid value for '--cash': must be a finite number, got inf"),
        ("--cash", "-5", "starting cash must be positive and at most 1,000,000,000,000, got -5"),
        ("--cash", "1e13", "starting cash must be positive and at most 1,000,000,000,000, got 1e+13"),
        ("--commission", "inf", "Invalid value for '--commission': must be a finite number, got inf"),
        ("--commission", "1e9", "commission must be between 0 and 1000000 ($ per order), got 1000000000.0"),
        ("--take-profit", "nan", "Invalid value for '--take-profit': must be a finite number, got nan"),
        ("--max-position-size", "inf", "Invalid value for '--max-position-size': must be a finite number"),
        ("--slippage-bps", "nan", "Invalid value for '--slippage-bps': must be a finite number, got nan"),
    ],
)
def test_a_non_finite_or_unbounded_number_is_refused_before_anything_is_written(
    tape: TapeRunner, tmp_path: Path, option: str, value: str, message: str
) -> None:
    result = tape("backtest", "AAPL", f"{option}={value}")
    assert result.returncode == 2
    assert_clean_failure(result, message)
    assert not (tmp_path / "tape.db").exists()


def test_a_data_file_that_is_not_sqlite_is_refused_and_left_as_it_was(
    tape: TapeRunner, tmp_path: Path
) -> None:
    data = tmp_path / "prices.txt"
    data.write_text("symbol,ts,close\nAAPL,1,2\n" * 20)
    before = hashlib.sha256(data.read_bytes()).hexdigest()
    result = tape("--data", str(data), "backtest", "AAPL")
    assert result.returncode == 2
    assert_clean_failure(
        result,
        f"error: cannot read market data {data}: file is not a database (not a tape market-data file?)",
    )
    assert hashlib.sha256(data.read_bytes()).hexdigest() == before
    assert not (tmp_path / "tape.db").exists()
