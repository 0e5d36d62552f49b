"""Small things people read: times in explain, report on a backtest, table headers, buy & hold."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tape.events.report import market_time, market_times
from tests.conftest import TapeRunner

WINDOW = ["--start", "2008-01-01", "--end", "2012-12-31"]


def _backtest(tape: TapeRunner) -> dict:
    result = tape("backtest", "AAPL", *WINDOW, "--json", "--no-files")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_explain_prints_times_not_nanoseconds(tape: TapeRunner) -> None:
    shown = tape("explain", _backtest(tape)["run_id"], "--trade", "1").stdout
    assert not re.search(r"\d{18}", shown)
    assert re.search(r"entry_ts=20\d\d-\d\d-\d\dT\d\d:\d\d-0[45]:00", shown)


def test_report_of_a_backtest_by_period_says_it_is_the_reference(tape: TapeRunner) -> None:
    shown = tape("report", _backtest(tape)["run_id"], "--period", "monthly").stdout
    assert "this run is a backtest" in shown
    assert "no backtest of this strategy" not in shown


def test_walk_forward_table_names_its_flag_column_and_validate_shows_buy_and_hold(tape: TapeRunner) -> None:
    walk = tape("walkforward", "AAPL", "--grid", "short=5,10", "--grid", "long=50", "--folds", "2", *WINDOW)
    assert walk.returncode == 0, walk.stderr
    header = next(line for line in walk.stdout.splitlines() if "efficiency" in line)
    assert header.rstrip("┃│ ").endswith("flag")
    valid = tape("validate", "AAPL", "MSFT", "--periods", "2", *WINDOW)
    assert valid.returncode == 0, valid.stderr
    assert "buy & hold %" in valid.stdout


@pytest.mark.parametrize("timeframe", ["1Min", "1Hour", "1Day"])
def test_trade_times_formatted_together_read_as_each_formatted_alone(timeframe: str) -> None:
    # Minutes across both 2021 clock changes (2am local, on whole UTC hours), before 1970, and a few
    # times off the minute (those go one by one).
    minute = 60 * 10**9
    around = [np.datetime64(d, "ns").astype(np.int64) for d in ("2021-03-14T06:00", "2021-11-07T05:00")]
    stamps = [int(t) + k * minute for t in around for k in range(-130, 130, 7)]
    stamps += [int(np.datetime64("1965-07-01T14:30", "ns").astype(np.int64)), 0]
    assert market_times(stamps, timeframe) == [market_time(t, timeframe) for t in stamps]
    off_minute = [stamps[0] + 59_999_999_999, stamps[1] + 1]
    assert market_times(off_minute, timeframe) == [market_time(t, timeframe) for t in off_minute]
    assert market_times([], timeframe) == []
