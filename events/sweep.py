"""Parameter sweeps and walk-forward windows: pure planning, no execution.

A sweep is a list of parameter sets (a full grid or a seeded random sample of it); a walk-forward is a
list of (train, test) windows over a timeline. Executing them is the job of ``actors/jobs.py``.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from tape.events.errors import ConfigError

# objective name -> (metric key, higher is better)
OBJECTIVES: dict[str, tuple[str, bool]] = {
    "sharpe": ("sharpe", True),
    "sortino": ("sortino", True),
    "return": ("return_pct", True),
    "pnl": ("total_pnl", True),
    "profit_factor": ("profit_factor", True),
    "win_rate": ("win_rate", True),
    "recovery_factor": ("recovery_factor", True),
    "drawdown": ("max_drawdown_pct", False),
}


def parse_grid_args(pairs: Sequence[str]) -> dict[str, list[str]]:
    """``["short=5,10", "long=20,30"]`` -> ``{"short": ["5", "10"], "long": ["20", "30"]}``."""
    grid: dict[str, list[str]] = {}
    for pair in pairs:
        name, sep, values = pair.partition("=")
        items = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not name.strip():
            raise ConfigError(f"--grid expects NAME=V1,V2,..., got {pair!r}")
        if not items:
            raise ConfigError(f"--grid {name.strip()} has no values")
        grid[name.strip()] = items
    if not grid:
        raise ConfigError("the grid is empty: give at least one --grid NAME=V1,V2,...")
    return grid


def expand_grid(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination, in a stable order (names sorted, values as given)."""
    if not grid or any(len(v) == 0 for v in grid.values()):
        raise ConfigError("the grid is empty: every --grid needs at least one value")
    names = sorted(grid)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(grid[n] for n in names))]


def sample_grid(grid: Mapping[str, Sequence[Any]], n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` distinct combinations drawn with a seeded generator (all of them when ``n`` >= the grid)."""
    full = expand_grid(grid)
    if n <= 0:
        raise ConfigError("--random must be at least 1")
    if n >= len(full):
        return full
    picks = sorted(random.Random(seed).sample(range(len(full)), n))
    return [full[i] for i in picks]


def objective_value(metrics: Mapping[str, Any], objective: str) -> float:
    """The score to maximise: undefined metrics rank last."""
    key, higher = objective_key(objective)
    value = metrics.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return -math.inf
    return float(value) if higher else -float(value)


def objective_key(objective: str) -> tuple[str, bool]:
    """(metric key, higher is better) of an objective name; a clear error listing the known ones."""
    try:
        return OBJECTIVES[objective]
    except KeyError:
        raise ConfigError(f"unknown objective {objective!r}; choose from {', '.join(OBJECTIVES)}") from None


def best_index(scores: Sequence[float]) -> int:
    """Index of the highest score; ties go to the earliest (the grid order is stable)."""
    if not scores:
        raise ConfigError("no results to choose from")
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


class Fold(NamedTuple):
    """One walk-forward step as timeline positions: train [train_lo, train_hi), test [train_hi, test_hi)."""

    number: int
    train_lo: int
    train_hi: int
    test_hi: int


def walk_forward_folds(n: int, *, folds: int, train: float, anchored: bool, min_bars: int) -> list[Fold]:
    """Split ``n`` timeline positions into ``folds`` train/test steps.

    The timeline is cut into ``folds`` equal segments; each segment is divided ``train : 1 - train``.
    Rolling folds train on their own segment's first part; anchored folds train from the very start.
    Every test window follows its train window directly, so no test bar is ever seen in training.
    """
    if not (0.0 < train < 1.0):
        raise ConfigError(f"--train must be a fraction strictly between 0 and 1, got {train:g}")
    if folds < 1:
        raise ConfigError(f"--folds must be at least 1, got {folds}")
    segment = n // folds
    out = []
    for k in range(folds):
        lo = k * segment
        hi = n if k == folds - 1 else (k + 1) * segment
        cut = lo + int((hi - lo) * train)
        train_lo = 0 if anchored else lo
        if cut - train_lo < min_bars or hi - cut < 2:
            raise ConfigError(
                f"fold {k + 1} has {cut - train_lo} training and {hi - cut} test bars; the strategy needs "
                f"{min_bars} to warm up: use fewer folds, a longer period or a larger --train"
            )
        out.append(Fold(k + 1, train_lo, cut, hi))
    return out
