"""`tape bench sweep`: SMA parameter pairs over 20 symbols of 10 years of daily bars, as Ray tasks.

Measured twice on the same local Ray: one task at a time (one worker), then as many as there are CPUs.
Scaling efficiency = speed-up / workers. Bars are seeded synthetic random walks (generation untimed).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from tape.actors.jobs import ensure_ray, run_sweep
from tape.events.backtest import BacktestConfig
from tape.events.bars import BarSeries

DAY_NS = 86_400_000_000_000
FIRST_NS = 1_104_555_600_000_000_000  # 2005-01-01 00:00 New York


def synthetic_daily(symbols: int, bars: int, seed: int = 11) -> list[BarSeries]:
    """``symbols`` seeded daily random walks of ``bars`` weekdays each."""
    rng = np.random.default_rng(seed)
    out = []
    days = np.arange(bars)
    ts = FIRST_NS + (days + 2 * (days // 5)) * DAY_NS
    for k in range(symbols):
        close = 50.0 * np.exp(np.cumsum(rng.normal(0.0003, 0.018, bars)))
        open_ = np.r_[50.0, close[:-1]] * np.exp(rng.normal(0, 0.004, bars))
        high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.006, bars)))
        low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.006, bars)))
        out.append(
            BarSeries.from_arrays(f"S{k:02d}", "1Day", ts, open_, high, low, close, np.full(bars, 1e6))
        )
    return out


def sma_pairs(n: int) -> list[dict[str, int]]:
    """The first ``n`` (short, long) pairs with short < long from short 2..., long ...250."""
    pairs = [{"short": s, "long": lg} for s in range(2, 100) for lg in range(s + 5, 251, 5)]
    return pairs[:n]


def bench_sweep(
    *, pairs: int = 1000, symbols: int = 20, years: int = 10, address: str | None = None
) -> dict[str, Any]:
    """Backtests/s with one worker and with all, and the scaling efficiency between them."""
    series = synthetic_daily(symbols, years * 252)
    params = sma_pairs(pairs)
    base = BacktestConfig(symbols=[s.symbol for s in series])
    ray = ensure_ray(address)
    ref = ray.put(series)
    workers = int(ray.cluster_resources().get("CPU", 1))
    run_sweep(
        base, series, params[: max(workers, 2)], job_id="warm", phase="grid", series_ref=ref
    )  # warm workers
    timings = {}
    for label, cap in (("one", 1), ("all", None)):
        start = time.perf_counter()
        run_sweep(base, series, params, job_id="bench", phase="grid", series_ref=ref, max_in_flight=cap)
        timings[label] = time.perf_counter() - start
    speedup = timings["one"] / timings["all"]
    return {
        "backtests": len(params),
        "symbols": symbols,
        "bars_per_backtest": symbols * years * 252,
        "workers": workers,
        "one_worker_s": round(timings["one"], 2),
        "all_workers_s": round(timings["all"], 2),
        "backtests_per_s": round(len(params) / timings["all"], 2),
        "speedup": round(speedup, 3),
        "scaling_efficiency": round(speedup / workers, 3),
    }
