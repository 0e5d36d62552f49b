"""Backtest sweeps and Monte Carlo as Ray tasks: local Ray by default, any cluster with an address.

Market data goes into the object store once (``ray.put``); tasks get a reference and a batch of
parameter sets, run the pure core, and return BacktestSummary events. Workers never touch the log: the
driver appends what they return. Results come back in submission order, so the outcome does not depend
on how many workers ran them.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import numpy as np

from tape.events.backtest import BacktestConfig, run_backtest
from tape.events.bars import BarSeries
from tape.events.montecarlo import MonteCarloResult, Paths, blocks, simulate_block, summarize
from tape.events.report import fold_run
from tape.events.schema import BacktestSummary

Progress = Callable[[int, int], None]

# Seconds a local Ray takes to start and warm its workers on a small machine (measured: 3-5 s).
RAY_START_SECONDS = 3.0


def may_run_here(*, address: str | None, workers: int | None) -> bool:
    """Whether a sweep may skip Ray: not when a cluster (``address``) or a number of ``workers`` was
    asked for, nor when Ray is already up (then it costs nothing to use)."""
    if address is not None or workers is not None:
        return False
    ray = sys.modules.get("ray")
    return ray is None or not ray.is_initialized()


def is_small_sweep(first_seconds: float, remaining: int, cpus: int | None = None) -> bool:
    """Whether the ``remaining`` parameter sets, each timed like the first, finish here sooner than
    on a local Ray: start-up plus the work spread over ``cpus`` (default: this machine's)."""
    cpus = max(cpus or os.cpu_count() or 1, 1)
    work = first_seconds * remaining
    return work <= RAY_START_SECONDS + work / cpus


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> Any:
    """Connect to ``address`` (a running cluster, or "auto") or start a local Ray of ``num_cpus``."""
    import ray

    if not ray.is_initialized():
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # local, loopback-only instance
        if address:
            ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        else:
            _start_local_ray(ray, num_cpus)
    return ray


def _start_local_ray(ray: Any, num_cpus: int | None) -> None:
    """A fresh local head owned by this process: first reap heads left by drivers that died, then
    start one (``address="local"``: never join another head found on this machine, such as a
    detached engine's) without the dashboard, and record that this process owns it."""
    from tape.actors.local_ray import reap_dead_heads, record_head

    reap_dead_heads()
    ray.init(
        address="local",
        num_cpus=num_cpus,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
    )
    record_head(ray._private.worker._global_node.get_session_dir_path())


def numeric_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Metrics as floats for a BacktestSummary (undefined ratios are left out)."""
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and v is not None}


def shipped_code(base: BacktestConfig) -> list[Any]:
    """The user's strategy code a config needs, to travel inside each task (a worker may not have
    the file: the source goes with the task, not a shared-filesystem assumption)."""
    from tape.store.strategy_loader import codes_for

    return codes_for(base.strategy, base.params)


def _install(code: Sequence[Any]) -> None:
    if code:
        from tape.store.strategy_loader import install_codes

        install_codes(list(code))


def backtest_summaries(
    base: BacktestConfig,
    series: Sequence[BarSeries],
    param_sets: Sequence[dict[str, Any]],
    *,
    job_id: str,
    phase: str,
    fold: int = -1,
    first_index: int = 0,
    code: Sequence[Any] = (),
) -> list[BacktestSummary]:
    """Run one backtest per parameter set on ``series`` and summarise each (pure; runs in a task).
    ``code`` is the user's strategy source to install first (see :func:`shipped_code`)."""
    _install(code)
    out = []
    data = [s.fingerprint() for s in series]
    start_ts = min(int(s.ts[0]) for s in series)
    end_ts = max(int(s.ts[-1]) for s in series)
    for k, params in enumerate(param_sets, start=first_index):
        config = _with_params(base, params)
        report = fold_run(run_backtest(config, series, run_id=f"{job_id}-{phase}{fold}-{k}"))
        out.append(
            BacktestSummary(
                ts=start_ts,
                job_id=job_id,
                strategy=config.strategy,
                params=report.params,
                symbols=[s.symbol for s in series],
                start_ts=start_ts,
                end_ts=end_ts,
                config=_config_dict(config),
                data=data,
                metrics=numeric_metrics(report.metrics),
                phase=phase,
                fold=fold,
            )
        )
    return out


def _with_params(base: BacktestConfig, params: dict[str, Any]) -> BacktestConfig:
    import msgspec

    return msgspec.structs.replace(base, params={**base.params, **params})


def _config_dict(config: BacktestConfig) -> dict[str, Any]:
    import msgspec

    return msgspec.to_builtins(config)  # type: ignore[no-any-return]


def _get_or_drain(ray: Any, ref: Any, pending: dict[Any, int]) -> Any:
    """``ray.get(ref)``; when it failed, the other tasks' results are fetched and dropped first, so a
    failing strategy is reported once, by the caller, not again by Ray for every unread error."""
    try:
        return ray.get(ref)
    except Exception:
        for other in list(pending):
            with contextlib.suppress(Exception):
                ray.get(other)
        pending.clear()
        raise


def _chunks(n: int, workers: int) -> list[tuple[int, int]]:
    """Contiguous index ranges: about four batches a worker, so progress moves and load balances."""
    size = max(1, -(-n // (max(workers, 1) * 4)))
    return [(lo, min(n, lo + size)) for lo in range(0, n, size)]


def run_sweep(
    base: BacktestConfig,
    series: Sequence[BarSeries],
    param_sets: Sequence[dict[str, Any]],
    *,
    job_id: str,
    phase: str,
    fold: int = -1,
    address: str | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    series_ref: Any = None,
    in_process: bool = False,
    max_in_flight: int | None = None,
) -> list[BacktestSummary]:
    """Backtest every parameter set as Ray tasks; summaries in the order of ``param_sets``.

    ``in_process`` runs the same function here, without Ray: the reference a cluster run must match.
    Otherwise the first two parameter sets run here (the second timed), and the rest too when that
    is quicker than starting a local Ray (:func:`is_small_sweep`). ``max_in_flight`` caps the tasks
    running at once (1 measures a single worker).
    """
    if in_process:
        out = backtest_summaries(base, series, param_sets, job_id=job_id, phase=phase, fold=fold)
        if progress is not None:
            progress(len(out), len(param_sets))
        return out
    head: list[BacktestSummary] = []
    if series_ref is None and max_in_flight is None and may_run_here(address=address, workers=workers):
        # The first set pays the one-time costs (imports, first calls); the second is timed warm.
        head = backtest_summaries(base, series, param_sets[:1], job_id=job_id, phase=phase, fold=fold)
        started = time.perf_counter()
        head += backtest_summaries(
            base, series, param_sets[1:2], job_id=job_id, phase=phase, fold=fold, first_index=1
        )
        if is_small_sweep(time.perf_counter() - started, len(param_sets) - len(head)):
            head += backtest_summaries(
                base, series, param_sets[2:], job_id=job_id, phase=phase, fold=fold, first_index=2
            )
            if progress is not None:
                progress(len(head), len(param_sets))
            return head
    return head + _ray_sweep(
        base,
        series,
        param_sets,
        job_id=job_id,
        phase=phase,
        fold=fold,
        address=address,
        workers=workers,
        progress=progress,
        series_ref=series_ref,
        max_in_flight=max_in_flight,
        skip=len(head),
    )


def _ray_sweep(
    base: BacktestConfig,
    series: Sequence[BarSeries],
    param_sets: Sequence[dict[str, Any]],
    *,
    job_id: str,
    phase: str,
    fold: int,
    address: str | None,
    workers: int | None,
    progress: Progress | None,
    series_ref: Any,
    max_in_flight: int | None,
    skip: int,
) -> list[BacktestSummary]:
    """The parameter sets from index ``skip`` on, as Ray tasks, in order."""
    ray = ensure_ray(address, workers)
    task = ray.remote(num_cpus=1)(backtest_summaries)
    ref = series_ref if series_ref is not None else ray.put(list(series))
    code = shipped_code(base)
    parallel = int(ray.cluster_resources().get("CPU", 1))
    limit = max_in_flight or parallel * 4
    queue = [(lo + skip, hi + skip) for lo, hi in _chunks(len(param_sets) - skip, parallel)]
    pending: dict[Any, int] = {}
    done: dict[int, list[BacktestSummary]] = {}
    finished = skip
    while queue or pending:
        while queue and len(pending) < limit:
            lo, hi = queue.pop(0)
            future = task.remote(
                base, ref, param_sets[lo:hi], job_id=job_id, phase=phase, fold=fold, first_index=lo, code=code
            )
            pending[future] = lo
        ready, _ = ray.wait(list(pending), num_returns=1)
        for r in ready:
            lo = pending.pop(r)
            done[lo] = _get_or_drain(ray, r, pending)
            finished += len(done[lo])
        if progress is not None:
            progress(finished, len(param_sets))
    return [s for lo in sorted(done) for s in done[lo]]


def _window_summaries(
    base: BacktestConfig,
    windows: list[tuple[str, list[BarSeries]]],
    job_id: str,
    first: int,
    code: Sequence[Any] = (),
) -> list[BacktestSummary]:
    _install(code)
    out = []
    for k, (label, series) in enumerate(windows, start=first):
        (summary,) = backtest_summaries(
            base, series, [base.params], job_id=job_id, phase="validate", first_index=k
        )
        out.append(msgspec.structs.replace(summary, config={**summary.config, "window": label}))
    return out


def run_windows(
    base: BacktestConfig,
    windows: Sequence[tuple[str, list[BarSeries]]],
    *,
    job_id: str,
    address: str | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
) -> list[BacktestSummary]:
    """One backtest per (label, series) window as Ray tasks; summaries in window order."""
    ray = ensure_ray(address, workers)
    task = ray.remote(num_cpus=1)(_window_summaries)
    parallel = int(ray.cluster_resources().get("CPU", 1))
    code = shipped_code(base)
    pending = {
        task.remote(base, list(windows[lo:hi]), job_id, lo, code): lo
        for lo, hi in _chunks(len(windows), parallel)
    }
    done: dict[int, list[BacktestSummary]] = {}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for r in ready:
            done[pending.pop(r)] = _get_or_drain(ray, r, pending)
        if progress is not None:
            progress(sum(len(v) for v in done.values()), len(windows))
    return [s for lo in sorted(done) for s in done[lo]]


def run_montecarlo(
    pnls: np.ndarray,
    *,
    start_equity: float,
    n: int,
    seed: int,
    method: str,
    ruin_drawdown_pct: float,
    address: str | None = None,
    workers: int | None = None,
) -> MonteCarloResult:
    """The blocks of :mod:`events.montecarlo` as Ray tasks (same numbers as in-process)."""
    ray = ensure_ray(address, workers)
    plan = blocks(n)
    task = ray.remote(num_cpus=1)(simulate_block)
    ref = ray.put(np.asarray(pnls, dtype=np.float64))
    futures = [
        task.remote(
            ref, start_equity=start_equity, seed=seed, block=b, count=c, n_blocks=len(plan), method=method
        )
        for b, c in plan
    ]
    paths: list[Paths] = ray.get(futures)
    return summarize(
        paths, n=n, method=method, seed=seed, start_equity=start_equity, ruin_drawdown_pct=ruin_drawdown_pct
    )
