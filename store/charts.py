"""PNG charts: a backtest's equity, a sweep's heatmap, a walk-forward's folds, a Monte Carlo fan.

Each chart is its own matplotlib Figure drawn on an Agg canvas (no pyplot state, so charts drawn in
one process never leak into each other), written under a temporary name unique to the process and
renamed into place. Money axes read as dollars (``$105k``, ``$2.1M``), never in offset notation; a
curve set spanning more than :data:`LOG_SPAN` times switches to a log scale unless told otherwise.
Long series are decimated per pixel column (the minimum and maximum of each column are kept), so a
curve of a million bars draws the same shape as the full one.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import Formatter, LogLocator, NullFormatter, PercentFormatter

from tape.store import atomic

LOG_SPAN = 10.0  # max/min of the plotted curves above which the money axis is logarithmic
PIXEL_COLUMNS = 1200  # columns a curve is decimated to (the figures are ~1200 px wide)
MAX_MARKERS = 400  # trade markers drawn per kind before they are thinned
DPI = 110
STRATEGY_COLOR, HOLD_COLOR, ENTRY_COLOR, EXIT_COLOR = "#1f77b4", "#7f7f7f", "#2ca02c", "#d62728"
SHORT_COLOR = "#9467bd"  # a short's entry


class MoneyFormatter(Formatter):
    """Dollar tick labels with as few significant digits as keep neighbouring ticks distinct."""

    def __init__(self) -> None:
        self.digits = 3

    def set_locs(self, locs: Any) -> None:
        super().set_locs(locs)
        values = [v for v in np.asarray(locs, dtype=float) if np.isfinite(v)]
        for digits in range(2, 9):
            self.digits = digits
            if len({money_text(v, digits) for v in values}) == len(set(values)):
                break

    def __call__(self, x: float, pos: int | None = None) -> str:
        return money_text(x, self.digits)


def money_text(value: float, digits: int = 3) -> str:
    """``2_100_000`` -> ``$2.1M``; ``105_000`` -> ``$105k``; ``950`` -> ``$950``; ``0.5`` -> ``$0.5``."""
    sign, size, suffix = ("-" if value < 0 else ""), abs(value), ""
    for scale, name in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if size >= scale:
            size, suffix = size / scale, name
            break
    whole = len(str(int(size))) if size >= 1 else 0
    text = f"{size:.{max(0, digits - whole)}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{sign}${text}{suffix}"


def wants_log(curves: Sequence[np.ndarray], log_scale: bool | None) -> bool:
    """The scale of a money axis: as asked, or log when the positive values span > LOG_SPAN times."""
    if log_scale is not None:
        return log_scale
    values = np.concatenate([np.asarray(c, dtype=float).ravel() for c in curves]) if curves else np.zeros(0)
    values = values[np.isfinite(values)]
    if values.size == 0 or values.min() <= 0:
        return False
    return bool(values.max() / values.min() > LOG_SPAN)


def decimate(x: np.ndarray, y: np.ndarray, columns: int = PIXEL_COLUMNS) -> np.ndarray:
    """Indices of the points to draw: per column of ``x`` its lowest and highest ``y``, plus the ends.

    A line through them has every peak and trough the full line has at that width.
    """
    n = len(x)
    if n <= 2 * columns:
        return np.arange(n)
    xf = np.asarray(x, dtype=np.float64)
    span = xf[-1] - xf[0]
    column = (
        np.zeros(n, dtype=np.int64) if span <= 0 else ((xf - xf[0]) / span * (columns - 1)).astype(np.int64)
    )
    starts = np.flatnonzero(np.r_[True, column[1:] != column[:-1]])
    ends = np.r_[starts[1:], n]
    keep = [0, n - 1]
    for lo, hi in zip(starts, ends, strict=True):
        part = y[lo:hi]
        keep += [lo + int(np.argmin(part)), lo + int(np.argmax(part))]
    return np.unique(np.asarray(keep, dtype=np.int64))


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained", dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG at ``path``, whole or not at all (the temporary name is per process)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(path) as tmp:
        fig.savefig(tmp, dpi=DPI)
    return path


def money_axis(ax: Any, log: bool) -> None:
    """Dollar ticks on ``ax``'s y axis, log-scaled when ``log``."""
    if log:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(MoneyFormatter())


def _dates(ts: np.ndarray) -> np.ndarray:
    return np.asarray(ts, dtype=np.int64).astype("datetime64[ns]")


def drawdown_pct(curve: np.ndarray) -> np.ndarray:
    """How far below its running peak a curve is at each point, in % (0 or negative)."""
    peak = np.maximum.accumulate(curve)
    return (curve / peak - 1.0) * 100.0


# --------------------------------------------------------------------------- equity


def equity_figure(
    *,
    ts: np.ndarray,
    equity: np.ndarray,
    hold: np.ndarray | None,
    entries: tuple[np.ndarray, np.ndarray],
    exits: tuple[np.ndarray, np.ndarray],
    title: str,
    subtitle: str,
    strategy_label: str,
    log_scale: bool | None = None,
    short_entries: tuple[np.ndarray, np.ndarray] | None = None,
) -> Figure:
    """Strategy equity (and buy & hold) with trade markers on top (a short's entry marked apart from a
    long's), both drawdowns below."""
    fig = _figure(11, 6.8)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    keep = decimate(ts, equity)
    when = _dates(ts)
    top.plot(when[keep], equity[keep], color=STRATEGY_COLOR, linewidth=1.3, label=strategy_label)
    curves = [equity]
    if hold is not None:
        keep_hold = decimate(ts, hold)
        top.plot(when[keep_hold], hold[keep_hold], color=HOLD_COLOR, linewidth=1.0, label="buy & hold")
        curves.append(hold)
    no_shorts = (np.zeros(0, dtype=np.int64), np.zeros(0))
    for (at, value), marker, color, name in (
        (
            entries,
            "^",
            ENTRY_COLOR,
            "entry" if short_entries is None or not len(short_entries[0]) else "long entry",
        ),
        (short_entries or no_shorts, "D", SHORT_COLOR, "short entry"),
        (exits, "v", EXIT_COLOR, "exit"),
    ):
        if len(at) == 0:
            continue
        stride = max(1, math.ceil(len(at) / MAX_MARKERS))
        label = f"{name} ({len(at):,})" if stride == 1 else f"{name} (1 in {stride} of {len(at):,} shown)"
        top.scatter(
            _dates(at[::stride]), value[::stride], marker=marker, s=22, color=color, zorder=3, label=label
        )
    log = wants_log(curves, log_scale)
    money_axis(top, log)
    top.set_ylabel("equity" + (" (log scale)" if log else ""))
    top.grid(alpha=0.3, which="major")
    bottom.fill_between(
        when[keep], drawdown_pct(equity)[keep], 0.0, color=STRATEGY_COLOR, alpha=0.35, linewidth=0
    )
    bottom.plot(when[keep], drawdown_pct(equity)[keep], color=STRATEGY_COLOR, linewidth=0.8, label="strategy")
    if hold is not None:
        bottom.plot(
            when[keep_hold],
            drawdown_pct(hold)[keep_hold],
            color=HOLD_COLOR,
            linewidth=0.9,
            label="buy & hold",
        )
    bottom.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    bottom.set_ylabel("drawdown")
    bottom.grid(alpha=0.3)
    fig.suptitle(f"{title}\n{subtitle}", fontsize=11)
    fig.legend(*top.get_legend_handles_labels(), loc="outside lower center", ncols=4, frameon=False)
    return fig


# --------------------------------------------------------------------------- sweeps


def _text_color(rgba: Sequence[float]) -> str:
    """Black on light cells, white on dark ones (relative luminance of the cell's colour)."""
    r, g, b = rgba[:3]
    return "black" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.45 else "white"


def plot_heatmap(
    rows: Sequence[tuple[dict[str, Any], float]],
    x: str,
    y: str,
    objective: str,
    path: Path,
    *,
    title: str = "",
) -> Path:
    """:func:`heatmap_figure` written to ``path``."""
    return save_figure(heatmap_figure(rows, x, y, objective, title=title), path)


def heatmap_figure(
    rows: Sequence[tuple[dict[str, Any], float]], x: str, y: str, objective: str, *, title: str = ""
) -> Figure:
    """Objective over two parameters (the best value where other parameters vary), perceptual colours."""
    xs = sorted({r[0][x] for r in rows})
    ys = sorted({r[0][y] for r in rows})
    grid = np.full((len(ys), len(xs)), np.nan)
    for params, score in rows:
        i, j = ys.index(params[y]), xs.index(params[x])
        if np.isfinite(score) and (np.isnan(grid[i, j]) or score > grid[i, j]):
            grid[i, j] = score
    fig = _figure(7.5, 6)
    ax = fig.subplots()
    image = ax.imshow(grid, origin="lower", cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(xs)), [str(v) for v in xs])
    ax.set_yticks(range(len(ys)), [str(v) for v in ys])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    for i in range(len(ys)):
        for j in range(len(xs)):
            if np.isfinite(grid[i, j]):
                color = _text_color(image.cmap(image.norm(grid[i, j])))
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", color=color, fontsize=8)
    fig.colorbar(image, ax=ax, label=objective)
    ax.set_title(f"{objective} by {x} and {y}" + (f"\n{title}" if title else ""), fontsize=10)
    return fig


def plot_walkforward(path: Path, **chart: Any) -> Path:
    """:func:`walkforward_figure` written to ``path``."""
    return save_figure(walkforward_figure(**chart), path)


def walkforward_figure(
    *,
    windows: Sequence[tuple[int, int]],
    ts: np.ndarray,
    equity: np.ndarray,
    hold: np.ndarray | None,
    title: str,
    log_scale: bool | None = None,
) -> Figure:
    """The stitched out-of-sample equity, drawn per test window (no line across the gaps between
    them), with the windows shaded and numbered and buy & hold over the same windows."""
    fig = _figure(11, 5)
    ax = fig.subplots()
    ts = np.asarray(ts, dtype=np.int64)
    curves = [equity] if hold is None else [equity, hold]
    for fold, (lo, hi) in enumerate(windows, start=1):
        inside = (ts >= lo) & (ts <= hi)
        when = _dates(ts[inside])
        first = fold == 1
        ax.plot(
            when,
            equity[inside],
            color=STRATEGY_COLOR,
            linewidth=1.3,
            label="out of sample" if first else None,
        )
        if hold is not None:
            ax.plot(
                when, hold[inside], color=HOLD_COLOR, linewidth=1.0, label="buy & hold" if first else None
            )
        ax.axvspan(
            _dates(np.array([lo]))[0], _dates(np.array([hi]))[0], color="#ffdd99", alpha=0.18, linewidth=0
        )
        ax.axvline(_dates(np.array([lo]))[0], color="#555555", linewidth=0.8, linestyle="--")
        ax.annotate(
            f"fold {fold}",
            (_dates(np.array([lo]))[0], 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -12),
            textcoords="offset points",
            fontsize=8,
            color="#555555",
        )
    log = wants_log(curves, log_scale)
    money_axis(ax, log)
    ax.set_ylabel("equity" + (" (log scale)" if log else ""))
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=2, frameon=False)
    return fig


def plot_equity_line(ts: Sequence[int], equity: Sequence[float], title: str, path: Path) -> Path:
    """One equity curve over time, one window (a walk-forward without its folds)."""
    values = np.asarray(equity, dtype=float)
    stamps = np.asarray(ts, dtype=np.int64)
    window = [(int(stamps[0]), int(stamps[-1]))] if len(stamps) else []
    return plot_walkforward(path, windows=window, ts=stamps, equity=values, hold=None, title=title)


# --------------------------------------------------------------------------- Monte Carlo


def plot_fan(
    bands: Sequence[Sequence[float]],
    title: str,
    path: Path,
    *,
    actual: Sequence[float] | None = None,
    note: str = "",
) -> Path:
    """:func:`fan_figure` written to ``path``."""
    return save_figure(fan_figure(bands, title, actual=actual, note=note), path)


def fan_figure(
    bands: Sequence[Sequence[float]], title: str, *, actual: Sequence[float] | None = None, note: str = ""
) -> Figure:
    """Monte Carlo equity percentiles (5-95, 25-75, median) over trade number, and the run's own path."""
    p5, p25, p50, p75, p95 = (np.asarray(b) for b in bands)
    x = np.arange(p50.shape[0])
    fig = _figure(10, 5.5)
    ax = fig.subplots()
    ax.fill_between(x, p5, p95, color=STRATEGY_COLOR, alpha=0.15, linewidth=0, label="5-95 % of paths")
    ax.fill_between(x, p25, p75, color=STRATEGY_COLOR, alpha=0.35, linewidth=0, label="25-75 %")
    ax.plot(x, p50, color=STRATEGY_COLOR, linewidth=1.4, label="median path")
    curves = [p5, p95]
    if actual is not None:
        path_values = np.asarray(actual, dtype=float)
        ax.plot(
            np.arange(path_values.shape[0]), path_values, color="black", linewidth=1.3, label="the run itself"
        )
        curves.append(path_values)
    money_axis(ax, wants_log(curves, None))
    ax.set_xlabel("trade")
    ax.set_ylabel("equity")
    ax.grid(alpha=0.3)
    ax.set_title(title + (f"\n{textwrap.fill(note, 120)}" if note else ""), fontsize=10)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=4, frameon=False)
    return fig
