"""The live scheduler: aligned cycles inside NYSE sessions, around the clock for crypto."""

from __future__ import annotations

import pandas as pd
import pytest

from tape.actors.schedule import next_run, parse_interval
from tape.events.errors import ConfigError


def _ns(text: str) -> int:
    return int(pd.Timestamp(text, tz="America/New_York").tz_convert("UTC").value)


def _ny(ns: int) -> str:
    return pd.Timestamp(ns, tz="UTC").tz_convert("America/New_York").strftime("%Y-%m-%d %H:%M")


def test_intervals_parse() -> None:
    assert (parse_interval("30s"), parse_interval("5m"), parse_interval("1h")) == (30, 300, 3600)
    with pytest.raises(ConfigError, match="--interval"):
        parse_interval("5 weeks")


def test_five_minute_cycles_are_aligned_within_the_session() -> None:
    assert _ny(next_run(_ns("2024-06-03 10:02"), 300)) == "2024-06-03 10:05"


def test_after_the_close_the_next_cycle_is_the_next_open() -> None:
    assert _ny(next_run(_ns("2024-06-03 15:58"), 300)) == "2024-06-04 09:30"


def test_weekends_and_holidays_are_skipped() -> None:
    assert _ny(next_run(_ns("2024-07-03 16:30"), 300)) == "2024-07-05 09:30"  # July 4th
    assert _ny(next_run(_ns("2024-06-07 17:00"), 300)) == "2024-06-10 09:30"  # a weekend


def test_half_days_close_early() -> None:
    assert _ny(next_run(_ns("2024-11-29 12:58"), 300)) == "2024-12-02 09:30"  # 13:00 close after Thanksgiving


def test_crypto_runs_around_the_clock() -> None:
    assert _ny(next_run(_ns("2024-07-04 03:02"), 300, crypto=True)) == "2024-07-04 03:05"
