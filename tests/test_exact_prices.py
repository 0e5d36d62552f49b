"""Prices stay exact in everything a machine reads; people see them rounded to significant digits."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tape.events.report import price_text
from tests.conftest import TapeRunner


@pytest.fixture
def tiny(tape: TapeRunner, tmp_path: Path) -> dict:
    """A backtest of an asset trading around $0.0000123, with its files."""
    rng = np.random.default_rng(5)
    close = 0.0000123 * np.exp(np.cumsum(rng.normal(0, 0.03, 300)))
    pd.DataFrame(
        {
            "date": pd.bdate_range("2021-01-01", periods=300).strftime("%Y-%m-%d"),
            "open": close,
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": 1e9,
        }
    ).to_csv(tmp_path / "tiny.csv", index=False)
    assert tape("data", "import", str(tmp_path / "tiny.csv"), "--symbol", "TINY").returncode == 0
    result = tape("backtest", "TINY", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_json_trade_prices_are_the_logs_fill_prices(tape: TapeRunner, tiny: dict) -> None:
    first = tiny["trades"][0]
    assert 0 < first["entry_price"] < 0.0001 and 0 < first["exit_price"] < 0.0001
    fills = [
        json.loads(line)
        for line in tape("explain", tiny["run_id"], "--trade", "1", "--json").stdout.splitlines()
        if '"kind":"fill"' in line
    ]
    assert [f["price"] for f in fills] == [first["entry_price"], first["exit_price"]]


def test_csv_and_results_file_hold_the_same_exact_prices(tiny: dict, tmp_path: Path) -> None:
    (trades_csv,) = (tmp_path / "results").glob(f"trades_TINY_*_{tiny['run_id']}.csv")
    rows = list(csv.DictReader(trades_csv.open()))
    assert [float(r["entry_price"]) for r in rows] == [t["entry_price"] for t in tiny["trades"]]
    (results,) = (tmp_path / "results").glob(f"backtest_TINY_*_{tiny['run_id']}.json")
    assert json.loads(results.read_text())["trades"] == tiny["trades"]


def test_the_report_shows_six_significant_digits(tape: TapeRunner, tiny: dict) -> None:
    shown = tape("report", tiny["run_id"]).stdout
    last = tiny["trades"][-1]
    assert price_text(last["entry_price"]) in shown
    assert price_text(last["entry_price"]).startswith("0.0000")
    assert len(price_text(last["entry_price"]).lstrip("0.")) == 6


def test_price_text_keeps_two_decimals_for_dollar_prices() -> None:
    assert [price_text(v) for v in (187.5, 12345.678, 0.5)] == ["187.50", "12,345.68", "0.50"]
    assert price_text(0.000012345678) == "0.0000123457"
