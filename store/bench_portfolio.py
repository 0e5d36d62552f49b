"""`tape bench portfolio`: the sp500_20 monthly momentum backtest (33 years of daily bars) and a
50-combination optimize of it, each timed as a whole `tape` process, beside a vectorised pandas
computation of the same weights on the same machine (read the CSV, score, rank, weight)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SP500_20 = Path(__file__).resolve().parent / "sample" / "sp500_20_daily.csv.gz"
TOPS = (1, 2, 3, 4, 5)
LOOKBACKS = (42, 63, 84, 105, 126, 147, 168, 189, 210, 252)  # x TOPS: 50 combinations


def pandas_weights(lookback: int = 252, skip: int = 21, top: int = 5, closes: Any = None) -> Any:
    """Momentum weights in plain pandas: the return over ``lookback`` bars skipping ``skip``, the
    best ``top`` at 1/top each (ties to the earlier column), as a DataFrame of dates x symbols."""
    import pandas as pd

    if closes is None:
        closes = pd.read_csv(SP500_20, index_col="Date", parse_dates=True).sort_index(axis=1)
    score = closes.shift(skip) / closes.shift(lookback) - 1.0
    rank = score.rank(axis=1, ascending=False, method="first")
    return (rank <= top).astype(float) / top


def _tape(*args: str, log: str) -> tuple[float, float]:
    """Wall and CPU (user + sys) seconds of one whole `tape` process (and what it started)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "tape.cli.app", "--log", log, *args],
        check=True,
        capture_output=True,
        cwd=os.path.dirname(log),
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def _best(repeat: int, run: Any) -> tuple[float, float]:
    """The fastest wall and the lowest CPU of ``repeat`` runs."""
    runs = [run() for _ in range(repeat)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def bench_portfolio(*, repeat: int = 3) -> dict[str, Any]:
    """Whole-process seconds of the backtest and of the optimize (fastest of ``repeat``, each into a
    fresh log), and of the pandas weights (one set, then the 50), with a check that tape's weights
    are the pandas ones."""
    import pandas as pd

    from tape.events.panel import panel_of
    from tape.events.strategies import make_strategy
    from tape.store.market import bundled_symbols, load_many

    backtest = ["backtest", "--universe", "sp500_20", "--strategy", "momentum", "--rebalance", "monthly"]
    grid = ["-g", "top=" + ",".join(map(str, TOPS)), "-g", "lookback=" + ",".join(map(str, LOOKBACKS))]
    with tempfile.TemporaryDirectory(prefix="tape-bench-") as tmp:
        fresh = iter(range(10**6))
        backtest_s = _best(repeat, lambda: _tape(*backtest, "--no-files", log=f"{tmp}/b{next(fresh)}.db"))
        optimize_s = _best(
            repeat, lambda: _tape("optimize", *backtest[1:5], *grid, log=f"{tmp}/o{next(fresh)}.db")
        )
    start = time.perf_counter()
    closes = pd.read_csv(SP500_20, index_col="Date", parse_dates=True).sort_index(axis=1)
    expected = pandas_weights(closes=closes)
    pandas_s = time.perf_counter() - start
    start = time.perf_counter()
    for top in TOPS:
        for lookback in LOOKBACKS:
            pandas_weights(lookback, 21, top, closes)
    pandas_50_s = pandas_s + time.perf_counter() - start
    panel = panel_of(load_many(bundled_symbols("sp500_20"), data_path=None, dataset="sp500_20"))
    start = time.perf_counter()
    ours = make_strategy("momentum").weights(panel).weights  # type: ignore[attr-defined]
    tape_weights_s = time.perf_counter() - start
    ready = ~np.isnan(ours).all(axis=1)
    return {
        "rows": len(panel),
        "symbols": panel.width,
        "backtest_process_s": round(backtest_s[0], 2),
        "backtest_process_cpu_s": round(backtest_s[1], 2),
        "optimize_50_process_s": round(optimize_s[0], 2),
        "optimize_50_process_cpu_s": round(optimize_s[1], 2),
        "pandas_weights_s": round(pandas_s, 4),
        "pandas_weights_50_s": round(pandas_50_s, 4),
        "tape_weights_s": round(tape_weights_s, 4),
        "weights_equal_pandas": bool(np.array_equal(ours[ready], expected.to_numpy()[ready])),
        "repeat": repeat,
        "load_average": round(os.getloadavg()[0], 2),
    }
