"""Monte Carlo on a run's trades: resample (bootstrap, the default) or reorder (shuffle) them many times.

The two answer different questions (:data:`WHAT_IT_SAYS`). Bootstrap draws each path's trades with
replacement from the run's, so totals vary: it asks whether the result could have been luck. Shuffle
keeps the same trades in another order, so every path ends where the run ended: it says nothing
about the return, only how deep the drawdowns and how long the losing streaks could have been.

Simulations are numbered 0..n-1 and drawn in fixed blocks of ``BLOCK`` simulations, block ``b`` from
``SeedSequence(seed).spawn(...)[b]``: any split of the blocks across workers gives the same numbers.
"""

from __future__ import annotations

from typing import Literal

import msgspec
import numpy as np

from tape.events.errors import ConfigError

BLOCK = 1000
PERCENTILES = (5, 25, 50, 75, 95)
Method = Literal["shuffle", "bootstrap"]
DEFAULT_METHOD: Method = "bootstrap"

WHAT_IT_SAYS = {
    "bootstrap": (
        "bootstrap (trades resampled with replacement): how the return could vary from the same edge, "
        "i.e. could this have been luck; it cannot see changing markets or trades that depend on each other"
    ),
    "shuffle": (
        "shuffle (the same trades reordered): drawdown and losing-streak risk; every path ends at the "
        "run's own return, so it says nothing about whether that return was luck"
    ),
}


class Paths(msgspec.Struct, frozen=True):
    """Per-simulation outcomes of a block range."""

    final_return_pct: np.ndarray
    max_drawdown_pct: np.ndarray
    equity: np.ndarray  # simulations x (trades + 1)


class MonteCarloResult(msgspec.Struct, frozen=True, kw_only=True):
    """Distributions over the simulations."""

    n: int
    method: str
    seed: int
    trades: int
    start_equity: float
    ruin_drawdown_pct: float
    final_return_pct: dict[str, float]  # "p5".."p95", "mean", "std"
    max_drawdown_pct: dict[str, float]
    prob_ruin: float
    prob_loss: float
    bands: list[list[float]]  # equity percentiles (5, 25, 50, 75, 95) at each trade index


def _check(pnls: np.ndarray, n: int, method: str) -> None:
    if pnls.size == 0:
        raise ConfigError("the run has no closed trades to resample")
    if n < 1:
        raise ConfigError(f"--n must be at least 1, got {n}")
    if method not in ("shuffle", "bootstrap"):
        raise ConfigError(f"unknown method {method!r}; choose shuffle or bootstrap")


def blocks(n: int) -> list[tuple[int, int]]:
    """(block number, simulations in it) covering simulations 0..n-1."""
    return [(b, min(BLOCK, n - b * BLOCK)) for b in range((n + BLOCK - 1) // BLOCK)]


def simulate_block(
    pnls: np.ndarray, *, start_equity: float, seed: int, block: int, count: int, n_blocks: int, method: Method
) -> Paths:
    """``count`` simulations of block ``block`` (independent of how blocks are spread over workers)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(n_blocks)[block])
    m = pnls.shape[0]
    if method == "shuffle":
        order = np.argsort(rng.random((count, m)), axis=1)
    else:
        order = rng.integers(0, m, size=(count, m))
    steps = pnls[order]
    equity = np.empty((count, m + 1))
    equity[:, 0] = start_equity
    np.cumsum(steps, axis=1, out=equity[:, 1:])
    equity[:, 1:] += start_equity
    peaks = np.maximum.accumulate(equity, axis=1)
    drawdown = ((peaks - equity) / peaks).max(axis=1) * 100.0
    final = (equity[:, -1] / start_equity - 1.0) * 100.0
    return Paths(final, drawdown, equity)


def summarize(
    paths: list[Paths], *, n: int, method: str, seed: int, start_equity: float, ruin_drawdown_pct: float
) -> MonteCarloResult:
    """Combine blocks (in block order) into the result."""
    final = np.concatenate([p.final_return_pct for p in paths])
    drawdown = np.concatenate([p.max_drawdown_pct for p in paths])
    equity = np.concatenate([p.equity for p in paths])

    def stats(x: np.ndarray) -> dict[str, float]:
        out = {f"p{q}": float(np.percentile(x, q)) for q in PERCENTILES}
        out["mean"], out["std"] = float(x.mean()), float(x.std())
        return out

    ruined = (drawdown >= ruin_drawdown_pct) | (equity.min(axis=1) <= 0)
    return MonteCarloResult(
        n=n,
        method=method,
        seed=seed,
        trades=equity.shape[1] - 1,
        start_equity=start_equity,
        ruin_drawdown_pct=ruin_drawdown_pct,
        final_return_pct=stats(final),
        max_drawdown_pct=stats(drawdown),
        prob_ruin=float(ruined.mean()),
        prob_loss=float((final < 0).mean()),
        bands=np.percentile(equity, PERCENTILES, axis=0).tolist(),
    )


def simulate_trades(
    pnls: np.ndarray,
    *,
    start_equity: float,
    n: int = 10_000,
    seed: int = 0,
    method: Method = DEFAULT_METHOD,
    ruin_drawdown_pct: float = 50.0,
) -> MonteCarloResult:
    """All blocks in this process (``actors/jobs.py`` spreads the same blocks over Ray workers)."""
    pnls = np.asarray(pnls, dtype=np.float64)
    _check(pnls, n, method)
    plan = blocks(n)
    paths = [
        simulate_block(
            pnls, start_equity=start_equity, seed=seed, block=b, count=c, n_blocks=len(plan), method=method
        )
        for b, c in plan
    ]
    return summarize(
        paths, n=n, method=method, seed=seed, start_equity=start_equity, ruin_drawdown_pct=ruin_drawdown_pct
    )


def verdict(result: MonteCarloResult) -> str:
    """A plain reading of the distribution, with the rule that decided it; a shuffle, whose paths all
    end at the run's own return, is read for its drawdowns only."""
    p5 = result.final_return_pct["p5"]
    dd95 = result.max_drawdown_pct["p95"]
    if result.prob_ruin > 0.05:
        return (
            f"unreliable: {result.prob_ruin:.1%} of paths hit a {result.ruin_drawdown_pct:g} % drawdown "
            "(rule: ruin > 5 %)"
        )
    if result.method == "shuffle":
        return (
            f"drawdown risk: in 95 % of orders the worst drawdown stays under {dd95:.2f} % "
            f"(every order returns {result.final_return_pct['p50']:.2f} %; use bootstrap to judge the return)"
        )
    if p5 < 0 or result.prob_loss > 0.25:
        return (
            f"fragile: the 5th-percentile return is {p5:.2f} % and {result.prob_loss:.1%} of paths lose "
            "(rule: p5 < 0 or loss probability > 25 %)"
        )
    return (
        f"robust: 95 % of paths return at least {p5:.2f} % with drawdowns up to {dd95:.2f} % "
        "(rule: p5 >= 0, ruin <= 5 %)"
    )
