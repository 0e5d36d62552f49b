"""`tape bench backtest|sweep --compare`: whole `tape` processes against raw limits and peers.

Backtest: ``bars`` seeded synthetic minute bars (:func:`synthetic_minute_bars`) are written to a CSV
and stored with `tape data import` (untimed); then `tape backtest` (SMA 5/20, 10 shares, no costs,
no stops, results files written) runs as a whole process against the backtesting.py script
(``peer_backtesting_sma.py``, reading the CSV as its users do) when backtesting.py is installed. The
raw limits, timed in this process: reading the stored bars out of SQLite into arrays, and a bare
numpy pass over them (both averages, the crossings, every round trip's P&L).

Sweep: a 10 x 10 SMA grid, each pair a 20-symbol shared-cash portfolio over the bundled ``sp500_20``
(`tape optimize`) against the vectorbt script (``peer_vectorbt_grid.py``: ``vbt.MA.run`` +
``Portfolio.from_signals(cash_sharing=True)``) when vectorbt is installed, and the same grid on one
symbol. Raw limit: numpy computing every pair's crossings on all 20 symbols in one pass.

Every whole-process figure is the fastest of ``repeat`` interleaved runs after one untimed warm-up
(byte-code, page cache and vectorbt's numba cache warm, as for a user's second run).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tape.store.bench_backtest import synthetic_minute_bars
from tape.store.bench_process import fastest_pair, installed, peer_argv, ratio, run_process
from tape.store.market import cached_frame

SWEEP_SHORT = [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
SWEEP_LONG = [30, 40, 50, 60, 70, 80, 90, 100, 110, 120]
NO_COSTS_NO_STOPS = [
    *("--qty", "10", "--slippage-bps", "0", "--commission", "0"),
    *("--stop-loss", "0", "--take-profit", "0", "--max-daily-loss", "0"),
]


def tape_argv(*args: str) -> list[str]:
    """The installed `tape` console script (as users run it), else ``python -m tape.cli.app``."""
    script = Path(sys.executable).with_name("tape")
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "tape.cli.app", *args]


def _fastest_in_process(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def write_bars_csv(path: Path, bars: int) -> None:
    """The synthetic bars as a CSV with a UTC timestamp column (what `tape data import` and pandas read)."""
    series = synthetic_minute_bars(bars)
    stamps = np.datetime_as_string(series.ts.astype("datetime64[ns]"), unit="s")
    with open(path, "w") as out:
        out.write("timestamp,open,high,low,close,volume\n")
        columns = (series.open, series.high, series.low, series.close, series.volume)
        rows = zip(stamps.tolist(), *(c.tolist() for c in columns), strict=True)
        out.writelines(f"{t}Z,{o!r},{h!r},{lo!r},{c!r},{v!r}\n" for t, o, h, lo, c, v in rows)


def numpy_sma_pass(open_: np.ndarray, close: np.ndarray, short: int = 5, long: int = 20) -> tuple[int, float]:
    """The floor of an SMA-cross backtest: both averages, the crossings, round trips of 10 shares
    filled at the next open; returns (round trips, P&L)."""
    csum = np.concatenate(([0.0], np.cumsum(close)))
    fast = (csum[long:] - csum[long - short : -short]) / short
    slow = (csum[long:] - csum[:-long]) / long
    above = fast > slow
    flips = np.flatnonzero(above[1:] != above[:-1]) + long  # bar index of each cross
    fills = open_[np.minimum(flips + 1, len(open_) - 1)]
    starts = 0 if above[flips[0] - long + 1] else 1
    entries, exits = fills[starts::2], fills[starts + 1 :: 2]
    if len(entries) > len(exits):  # still long at the end: closed at the last close
        exits = np.append(exits, close[-1])
    return len(entries), float(np.sum(exits - entries) * 10)


def compare_backtest(*, bars: int, repeat: int = 3) -> dict[str, Any]:
    """Whole `tape backtest` against backtesting.py (when installed) and the raw limits."""
    with tempfile.TemporaryDirectory(prefix="tape-bench-") as tmp:
        where = Path(tmp)
        csv = where / "bars.csv"
        write_bars_csv(csv, bars)
        run_process(tape_argv("--data", "bars.db", "data", "import", str(csv), "-s", "SYN"), cwd=where)
        frame = cached_frame(where / "bars.db", "SYN", "1Min")
        assert frame is not None
        read_s = _fastest_in_process(lambda: cached_frame(where / "bars.db", "SYN", "1Min"), repeat)
        numpy_s = _fastest_in_process(lambda: numpy_sma_pass(frame.open, frame.close), repeat)
        run = [*("--data", "bars.db", "backtest", "SYN", "-s", "sma_cross"), *NO_COSTS_NO_STOPS]
        run += ["-p", "short=5", "-p", "long=20"]
        trades = _tape_trades(run, where)
        peer = peer_argv("peer_backtesting_sma.py", str(csv)) if installed("backtesting") else None
        if peer:
            run_process(peer, cwd=where)  # warm-up
        tape, other = fastest_pair(tape_argv(*run), peer, cwd=where, repeat=repeat, fresh=where / "tape.db")
        python_s = fastest_pair([sys.executable, "-c", "pass"], None, cwd=where, repeat=repeat)[0].seconds
    figures: dict[str, Any] = {
        "bars": bars,
        "trades": trades,
        "repeat": repeat,
        "tape_s": round(tape.seconds, 2),
        "tape_mb": round(tape.peak_mb),
        "tape_cpu_s": round(tape.cpu_s, 2),
        "sqlite_read_s": round(read_s, 4),
        "numpy_pass_s": round(numpy_s, 4),
        "tape_over_numpy_pass": ratio(tape.seconds, numpy_s),
        "tape_over_sqlite_read": ratio(tape.seconds, read_s),
        "sqlite_read_bars_per_s": round(bars / read_s),
        "python_start_s": round(python_s, 3),
        "load_average": round(os.getloadavg()[0], 2),
    }
    if other is not None:
        figures |= {
            "backtesting_py_s": round(other.seconds, 2),
            "backtesting_py_mb": round(other.peak_mb),
            "backtesting_py_cpu_s": round(other.cpu_s, 2),
            "cpu_speedup_vs_backtesting_py": ratio(other.cpu_s, tape.cpu_s),
            "backtesting_py_trades": int(other.stdout.split()[-1]),
            "speedup_vs_backtesting_py": ratio(other.seconds, tape.seconds),
        }
    return figures


def _tape_trades(run: list[str], where: Path) -> int:
    """The run's trade count, from one untimed `--json` run (which also warms the caches)."""
    import json

    done = run_process(tape_argv(*run, "--json", "--no-files"), cwd=where, fresh=where / "tape.db")
    return int(json.loads(done.stdout)["total_trades"])


def numpy_grid_pass(close: np.ndarray, shorts: list[int], longs: list[int]) -> int:
    """Every (short, long) pair's SMA crossings on every column of ``close`` (bars x symbols)."""
    csum = np.vstack([np.zeros((1, close.shape[1])), np.nancumsum(close, axis=0)])
    means = {w: (csum[w:] - csum[:-w]) / w for w in {*shorts, *longs}}
    crossings = 0
    for s in shorts:
        for lg in longs:
            fast, slow = means[s][lg - s :], means[lg]
            above = fast > slow
            crossings += int(np.count_nonzero(above[1:] != above[:-1]))
    return crossings


def compare_sweep(*, repeat: int = 3) -> dict[str, Any]:
    """Whole `tape optimize` of the 10 x 10 grid on sp500_20 against vectorbt, and on one symbol."""
    import gzip

    import pandas as pd

    from tape.store.market import SP500_20_FILE, bundled_symbols

    symbols = bundled_symbols("sp500_20")
    grid = ["--grid", "short=" + ",".join(map(str, SWEEP_SHORT))]
    grid += ["--grid", "long=" + ",".join(map(str, SWEEP_LONG))]
    with gzip.open(SP500_20_FILE) as raw:
        close = pd.read_csv(raw, index_col=0).to_numpy(dtype=np.float64)
    numpy_s = _fastest_in_process(lambda: numpy_grid_pass(close, SWEEP_SHORT, SWEEP_LONG), repeat)
    with tempfile.TemporaryDirectory(prefix="tape-bench-") as tmp:
        where = Path(tmp)
        many = tape_argv("optimize", "--dataset", "sp500_20", *symbols, *grid, "--json")
        one = tape_argv("optimize", "--dataset", "sp500_20", "AAPL", *grid, "--json")
        peer = None
        if installed("vectorbt"):
            peer = peer_argv(
                "peer_vectorbt_grid.py",
                str(SP500_20_FILE),
                ",".join(map(str, SWEEP_SHORT)),
                ",".join(map(str, SWEEP_LONG)),
            )
            run_process(peer, cwd=where)  # warm-up: vectorbt compiles its numba functions once
        run_process(many, cwd=where)
        log = where / "tape.db"  # each run starts from no log, as the first did
        tape, other = fastest_pair(many, peer, cwd=where, repeat=repeat, fresh=log)
        single, _ = fastest_pair(one, None, cwd=where, repeat=repeat, fresh=log)
    figures: dict[str, Any] = {
        "combos": len(SWEEP_SHORT) * len(SWEEP_LONG),
        "symbols": len(symbols),
        "bars_per_symbol": int(close.shape[0]),
        "repeat": repeat,
        "tape_s": round(tape.seconds, 2),
        "tape_mb": round(tape.peak_mb),
        "tape_cpu_s": round(tape.cpu_s, 2),
        "single_symbol_s": round(single.seconds, 2),
        "single_symbol_cpu_s": round(single.cpu_s, 2),
        "single_symbol_mb": round(single.peak_mb),
        "numpy_grid_pass_s": round(numpy_s, 4),
        "tape_over_numpy_grid_pass": ratio(tape.seconds, numpy_s),
        "load_average": round(os.getloadavg()[0], 2),
    }
    if other is not None:
        figures |= {
            "vectorbt_s": round(other.seconds, 2),
            "vectorbt_mb": round(other.peak_mb),
            "vectorbt_cpu_s": round(other.cpu_s, 2),
            "speedup_vs_vectorbt": ratio(other.seconds, tape.seconds),
        }
    return figures
