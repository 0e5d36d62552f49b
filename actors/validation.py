"""Optimisation and walk-forward: plan (events/sweep.py), run as Ray tasks (actors/jobs.py), log.

Every backtest of a job is logged as one BacktestSummary event in the stream ``job/<job_id>`` (its
parameters, data fingerprint and metrics), appended by the driver. A job's id is the hash of what decides
it, so running the same job twice appends nothing.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from tape.actors.jobs import Progress, run_sweep
from tape.events.backtest import BacktestConfig, run_backtest
from tape.events.bars import BarSeries
from tape.events.errors import ConfigError
from tape.events.report import fold_run
from tape.events.schema import BacktestSummary
from tape.events.strategies import make_strategy
from tape.events.sweep import Fold, best_index, objective_key, objective_value, walk_forward_folds
from tape.store.backtests import code_version
from tape.store.log import EventLog, NewEvent

OVERFIT_EFFICIENCY = 0.5  # test return below half the train return (annualised) flags overfitting


class Ranked(msgspec.Struct, frozen=True):
    """One parameter set's result in a sweep."""

    params: dict[str, Any]
    metrics: dict[str, float]
    score: float


class OptimizeResult(msgspec.Struct, frozen=True):
    """A ranked sweep."""

    job_id: str
    objective: str
    ranked: list[Ranked]
    skipped: list[str]  # parameter sets the strategy refused, with why
    appended: int


class FoldResult(msgspec.Struct, frozen=True):
    """Train and test of one walk-forward fold."""

    fold: int
    train_start_ts: int
    train_end_ts: int
    test_start_ts: int
    test_end_ts: int
    params: dict[str, Any]
    train: dict[str, float]
    test: dict[str, float]
    efficiency: float | None  # annualised test return / annualised train return
    overfit: bool


class WalkForwardResult(msgspec.Struct, frozen=True):
    """Every fold, the stitched out-of-sample equity and the verdict."""

    job_id: str
    objective: str
    folds: list[FoldResult]
    oos_ts: list[int]
    oos_equity: list[float]
    oos_return_pct: float
    overfit_folds: int
    appended: int


def valid_param_sets(
    base: BacktestConfig, candidates: Sequence[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Typed parameter sets the strategy accepts, and the refused ones with the reason."""
    good, skipped = [], []
    for params in candidates:
        try:
            good.append(make_strategy(base.strategy, {**base.params, **params}).param_dict())
        except ConfigError as exc:
            skipped.append(f"{params}: {exc}")
    if not good:
        raise ConfigError(f"no valid parameter set in the grid ({skipped[0] if skipped else 'empty'})")
    return good, skipped


def job_id_for(kind: str, base: BacktestConfig, series: Sequence[BarSeries], extra: Any) -> str:
    """Hash of the job's config, data and code: identical jobs share an id."""
    payload = msgspec.msgpack.encode([kind, base, [s.fingerprint() for s in series], code_version(), extra])
    return hashlib.sha256(payload).hexdigest()[:16]


def append_summaries(log_path: Path, job_id: str, summaries: Sequence[BacktestSummary]) -> int:
    """Append a job's summaries (idempotent by event id); returns how many were new."""
    items = [NewEvent(f"job/{job_id}", s, f"{job_id}:{k:06d}") for k, s in enumerate(summaries)]
    with EventLog.create(log_path) as log:
        result = log.append_batch(items)
    return 0 if result.duplicate else result.count


def optimize(
    base: BacktestConfig,
    series: Sequence[BarSeries],
    candidates: Sequence[dict[str, Any]],
    *,
    objective: str,
    log_path: Path,
    address: str | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
) -> OptimizeResult:
    """Backtest every candidate on ``series`` (the training period only) and rank by ``objective``."""
    objective_key(objective)
    param_sets, skipped = valid_param_sets(base, candidates)
    job_id = job_id_for("optimize", base, series, [objective, param_sets])
    summaries = run_sweep(
        base,
        series,
        param_sets,
        job_id=job_id,
        phase="grid",
        address=address,
        workers=workers,
        progress=progress,
    )
    appended = append_summaries(log_path, job_id, summaries)
    ranked = sorted(
        (Ranked(s.params, s.metrics, objective_value(s.metrics, objective)) for s in summaries),
        key=lambda r: -r.score,
    )
    return OptimizeResult(job_id, objective, ranked, skipped, appended)


def _annualised_return(metrics: dict[str, float], bars: int, per_year: float = 252.0) -> float:
    growth = 1.0 + metrics.get("return_pct", 0.0) / 100.0
    if growth <= 0 or bars <= 0:
        return -100.0
    return (growth ** (per_year / bars) - 1.0) * 100.0


def _efficiency(train: dict[str, float], test: dict[str, float]) -> float | None:
    a = _annualised_return(train, int(train.get("bars", 0)))
    b = _annualised_return(test, int(test.get("bars", 0)))
    return None if a <= 0 else b / a


def walk_forward(
    base: BacktestConfig,
    series: Sequence[BarSeries],
    candidates: Sequence[dict[str, Any]],
    *,
    objective: str,
    folds: int,
    train: float,
    anchored: bool,
    log_path: Path,
    address: str | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    in_process: bool = False,
) -> WalkForwardResult:
    """Per fold: optimise on the train window only, then backtest the winner on the unseen test window."""
    objective_key(objective)
    param_sets, _ = valid_param_sets(base, candidates)
    warmup = max(make_strategy(base.strategy, {**base.params, **p}).warmup() for p in param_sets)
    timeline = np.unique(np.concatenate([s.ts for s in series]))
    plan = walk_forward_folds(len(timeline), folds=folds, train=train, anchored=anchored, min_bars=warmup + 2)
    job_id = job_id_for("walkforward", base, series, [objective, param_sets, folds, train, anchored])
    summaries: list[BacktestSummary] = []
    results: list[FoldResult] = []
    oos_ts: list[int] = []
    oos_equity: list[float] = []
    equity = base.cash
    total = len(plan) * (len(param_sets) + 1)
    for fold in plan:
        train_series = _window(series, timeline, fold.train_lo, fold.train_hi)
        test_series = _window(series, timeline, fold.train_hi, fold.test_hi)

        def fold_progress(done: int, _total: int, fold: Fold = fold) -> None:
            if progress is not None:
                progress((fold.number - 1) * (len(param_sets) + 1) + done, total)

        on: dict[str, Any] = {"job_id": job_id, "fold": fold.number, "address": address, "workers": workers}
        on["in_process"] = in_process
        trained = run_sweep(base, train_series, param_sets, phase="train", progress=fold_progress, **on)
        winner = trained[best_index([objective_value(s.metrics, objective) for s in trained])]
        (tested,) = run_sweep(base, test_series, [winner.params], phase="test", **on)
        summaries += [*trained, tested]
        results.append(_fold_result(fold, timeline, winner, tested))
        # Stitch the out-of-sample equity: each test window compounds on the equity the last one left.
        for ts, marked in _test_equity(base, winner.params, test_series, job_id):
            oos_ts.append(ts)
            oos_equity.append(equity * marked / base.cash)
        equity = oos_equity[-1] if oos_equity else equity
    appended = append_summaries(log_path, job_id, summaries)
    return WalkForwardResult(
        job_id=job_id,
        objective=objective,
        folds=results,
        oos_ts=oos_ts,
        oos_equity=oos_equity,
        oos_return_pct=(equity / base.cash - 1.0) * 100.0 if not math.isnan(equity) else 0.0,
        overfit_folds=sum(f.overfit for f in results),
        appended=appended,
    )


def _fold_result(
    fold: Fold, timeline: np.ndarray, winner: BacktestSummary, tested: BacktestSummary
) -> FoldResult:
    """One fold's windows, its winning parameters and their in- and out-of-sample metrics."""
    efficiency = _efficiency(winner.metrics, tested.metrics)
    return FoldResult(
        fold=fold.number,
        train_start_ts=int(timeline[fold.train_lo]),
        train_end_ts=int(timeline[fold.train_hi - 1]),
        test_start_ts=int(timeline[fold.train_hi]),
        test_end_ts=int(timeline[fold.test_hi - 1]),
        params=winner.params,
        train=winner.metrics,
        test=tested.metrics,
        efficiency=efficiency,
        overfit=efficiency is not None and efficiency < OVERFIT_EFFICIENCY,
    )


def _test_equity(
    base: BacktestConfig, params: dict[str, Any], test_series: Sequence[BarSeries], job_id: str
) -> list[tuple[int, float]]:
    """The winner's equity over a test window (started from the base cash), as (bar time, equity)."""
    config = msgspec.structs.replace(base, params=params)
    report = fold_run(run_backtest(config, test_series, run_id=f"{job_id}-oos"))
    return [(mark.ts, mark.equity) for mark in report.marks]


def _window(series: Sequence[BarSeries], timeline: np.ndarray, lo: int, hi: int) -> list[BarSeries]:
    start, end = int(timeline[lo]), int(timeline[hi - 1])
    out = [s.between(start, end) for s in series]
    return [s for s in out if len(s)]


class SymbolVerdict(msgspec.Struct, frozen=True):
    """How one symbol did over the whole range and in each period."""

    symbol: str
    full: dict[str, float]
    periods: list[dict[str, float]]
    profitable_periods: int
    consistency: float  # share of periods with a positive net return
    recommended: bool


class ValidateResult(msgspec.Struct, frozen=True):
    """Every symbol of a multi-symbol, multi-period validation, best first."""

    job_id: str
    strategy: str
    params: dict[str, Any]
    period_bounds: list[tuple[int, int]]
    symbols: list[SymbolVerdict]
    appended: int


MIN_CONSISTENCY = 0.6  # profitable in at least 60 % of the periods ...
MIN_SHARPE = 0.0  # ... with a positive full-range Sharpe, to be recommended


def validate_symbols(
    base: BacktestConfig,
    series: Sequence[BarSeries],
    *,
    periods: int,
    log_path: Path,
    address: str | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
) -> ValidateResult:
    """Backtest the strategy on each symbol alone, over the whole range and over ``periods`` equal
    slices of it (Ray tasks), and say which symbols it works on consistently."""
    from tape.actors.jobs import run_windows

    if periods < 1:
        raise ConfigError(f"--periods must be at least 1, got {periods}")
    if len(series) < 1:
        raise ConfigError("no symbols to validate")
    params = make_strategy(base.strategy, base.params).param_dict()
    windows: list[tuple[str, list[BarSeries]]] = []
    bounds: list[tuple[int, int]] = []
    timeline = np.unique(np.concatenate([s.ts for s in series]))
    cuts = np.linspace(0, len(timeline), periods + 1).astype(int)
    for k in range(periods):
        bounds.append((int(timeline[cuts[k]]), int(timeline[cuts[k + 1] - 1])))
    for s in series:
        windows.append((f"{s.symbol}:full", [s]))
        for k, (lo, hi) in enumerate(bounds):
            part = s.between(lo, hi)
            if len(part) > 1:
                windows.append((f"{s.symbol}:{k}", [part]))
    job_id = job_id_for("validate", base, series, [periods])
    summaries = run_windows(
        msgspec.structs.replace(base, params=params),
        windows,
        job_id=job_id,
        address=address,
        workers=workers,
        progress=progress,
    )
    appended = append_summaries(log_path, job_id, summaries)
    by_label = dict(zip((label for label, _ in windows), summaries, strict=True))
    verdicts = []
    for s in series:
        full = by_label[f"{s.symbol}:full"].metrics
        parts = [by_label[f"{s.symbol}:{k}"].metrics for k in range(periods) if f"{s.symbol}:{k}" in by_label]
        wins = sum(1 for m in parts if m.get("return_pct", 0.0) > 0)
        consistency = wins / len(parts) if parts else 0.0
        recommended = consistency >= MIN_CONSISTENCY and full.get("sharpe", -math.inf) > MIN_SHARPE
        verdicts.append(SymbolVerdict(s.symbol, full, parts, wins, consistency, recommended))
    verdicts.sort(key=lambda v: (-v.recommended, -v.consistency, -v.full.get("sharpe", -math.inf)))
    return ValidateResult(job_id, base.strategy, params, bounds, verdicts, appended)
