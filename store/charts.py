"""PNG charts of sweeps and Monte Carlo (matplotlib, Agg backend, written atomically)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tape.store import atomic


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic.replacing(path) as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        _pyplot().close(fig)
    return path


def plot_heatmap(
    rows: Sequence[tuple[dict[str, Any], float]], x: str, y: str, objective: str, path: Path
) -> Path:
    """Objective over two parameters (the best value where other parameters vary)."""
    plt = _pyplot()
    xs = sorted({r[0][x] for r in rows})
    ys = sorted({r[0][y] for r in rows})
    grid = np.full((len(ys), len(xs)), np.nan)
    for params, score in rows:
        i, j = ys.index(params[y]), xs.index(params[x])
        if np.isfinite(score) and (np.isnan(grid[i, j]) or score > grid[i, j]):
            grid[i, j] = score
    fig, ax = plt.subplots(figsize=(7, 5.5), constrained_layout=True)
    image = ax.imshow(grid, origin="lower", cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(xs)), [str(v) for v in xs])
    ax.set_yticks(range(len(ys)), [str(v) for v in ys])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    for i in range(len(ys)):
        for j in range(len(xs)):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", color="white", fontsize=8)
    fig.colorbar(image, ax=ax, label=objective)
    ax.set_title(f"{objective} by {x} and {y}")
    return _save(fig, path)


def plot_fan(bands: Sequence[Sequence[float]], title: str, path: Path) -> Path:
    """Monte Carlo equity percentiles (5-95, 25-75, median) over trade number."""
    plt = _pyplot()
    p5, p25, p50, p75, p95 = (np.asarray(b) for b in bands)
    x = np.arange(p50.shape[0])
    fig, ax = plt.subplots(figsize=(9, 5), constrained_layout=True)
    ax.fill_between(x, p5, p95, color="#1f77b4", alpha=0.15, label="5-95 %")
    ax.fill_between(x, p25, p75, color="#1f77b4", alpha=0.35, label="25-75 %")
    ax.plot(x, p50, color="#1f77b4", linewidth=1.4, label="median")
    ax.set_xlabel("trade")
    ax.set_ylabel("equity ($)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    return _save(fig, path)


def plot_equity_line(ts: Sequence[int], equity: Sequence[float], title: str, path: Path) -> Path:
    """One equity curve over time (the stitched out-of-sample curve of a walk-forward)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.5), constrained_layout=True)
    ax.plot(np.asarray(ts, dtype=np.int64).astype("datetime64[ns]"), equity, color="#2ca02c", linewidth=1.2)
    ax.set_ylabel("equity ($)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return _save(fig, path)
