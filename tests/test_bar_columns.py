"""Stored bars read back from their column BLOBs exactly as from their rows, old stores included."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from tape.store.bench_backtest import synthetic_minute_bars
from tape.store.market import BarFrame, _sample, _sample_symbols, cached_frame, load_bars, store_bars


def _store(path: Path, n: int = 2_000, *, seed: int = 7, adj: bool = True) -> None:
    bars = synthetic_minute_bars(n, symbol="SYN", seed=seed)
    adj_close = bars.close * 0.5 if adj else None
    if adj_close is not None:
        adj_close[3] = np.nan  # a missing value is stored as NULL and must come back as NaN
    frame = BarFrame(bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume, adj_close, "import")
    store_bars(path, "SYN", "1Min", frame)


def _columns(path: Path) -> dict[str, np.ndarray]:
    series = load_bars("SYN", data_path=path, timeframe="1Min", adjust=False)
    columns = {c: getattr(series, c) for c in ("ts", "open", "high", "low", "close", "volume")}
    stored = cached_frame(path, "SYN", "1Min")
    assert stored is not None and stored.adj_close is not None
    return {**columns, "adj_close": stored.adj_close}


def _forget_blobs(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE bar_columns")


def _blob_rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return db.execute("SELECT count(*) FROM bar_columns").fetchone()[0] if "bar_columns" in tables else 0


def _assert_bit_equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert a[name].tobytes() == b[name].tobytes(), name


def test_bars_read_from_blobs_equal_bars_read_from_rows(tmp_path: Path) -> None:
    path = tmp_path / "data.db"
    _store(path)
    from_blobs = _columns(path)
    _forget_blobs(path)
    _assert_bit_equal(from_blobs, _columns(path))


def test_a_store_without_blobs_gets_them_on_first_read(tmp_path: Path) -> None:
    path = tmp_path / "data.db"
    _store(path)
    _forget_blobs(path)
    assert _blob_rows(path) == 0
    _columns(path)
    assert _blob_rows(path) == 1


def test_replacing_a_series_replaces_its_blobs(tmp_path: Path) -> None:
    path = tmp_path / "data.db"
    _store(path, seed=1)
    _columns(path)
    _store(path, n=1_500, seed=2)
    fresh = _columns(path)
    _forget_blobs(path)
    _assert_bit_equal(fresh, _columns(path))
    assert len(fresh["ts"]) == 1_500


def test_a_busy_store_without_blobs_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "data.db"
    _store(path)
    expected = _columns(path)
    _forget_blobs(path)
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process is writing: readers read, writers wait
    try:
        stored = cached_frame(path, "SYN", "1Min")
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert stored is not None and stored.adj_close is not None
    _assert_bit_equal(expected, {"ts": stored.ts, **{c: getattr(stored, c) for c in expected if c != "ts"}})
    assert _blob_rows(path) == 0


def test_the_sample_symbols_read_without_parsing_are_the_parsed_samples() -> None:
    assert _sample_symbols() == frozenset(_sample())
