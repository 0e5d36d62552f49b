"""Exchange-local days of bar times equal pandas' tz conversion, across offset changes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tape.events.bars import session_days

S = 1_000_000_000


def _pandas_days(ts: np.ndarray, tz: str) -> np.ndarray:
    local = pd.DatetimeIndex(ts.astype("datetime64[ns]"), tz="UTC").tz_convert(tz).tz_localize(None)
    return (local.normalize().asi8 // 86_400_000_000_000).astype(np.int64)


def _at(moment: str) -> int:
    return int(np.datetime64(moment, "ns").astype(np.int64))


CASES = {
    "minute bars": _at("2015-01-05T14:30") + np.arange(200_000) * 60 * S,
    "spring forward, every second": _at("2021-03-14T06:00") + np.arange(-7200, 7200) * S,
    "fall back, every second": _at("2021-11-07T05:00") + np.arange(-7200, 7200) * S + 123,
    "local mean time to standard time": _at("1883-11-18T16:00") + np.arange(-50_000, 50_000) * S,
    "random instants, 1906-2096": np.sort(np.random.default_rng(1).integers(-2 * 10**18, 4 * 10**18, 50_000)),
}


@pytest.mark.parametrize("tz", ["America/New_York", "UTC", "Australia/Lord_Howe", "Asia/Kolkata"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_session_days_equal_pandas(tz: str, case: str) -> None:
    ts = CASES[case]
    got = session_days(ts, tz)
    assert got.dtype == np.int64
    assert np.array_equal(got, _pandas_days(ts, tz))
