"""The interactive HTML pages of jobs, written beside their PNG charts: a sweep's parameter heatmap and
ranking, a walk-forward's out-of-sample equity with its folds, a Monte Carlo fan with the run's own path.

The same numbers the PNGs draw, as self-contained plotly pages (store/html_report.py has the run page).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tape.store import atomic
from tape.store.charts import PIXEL_COLUMNS, decimate, wants_log
from tape.store.html_report import (
    HOLD_COLOR,
    STRATEGY_COLOR,
    base_layout,
    date_strings,
    line_trace,
    plotly_js,
    script_json,
)

MAX_RANKED_ROWS = 200  # rows of a sweep's ranking listed on its page


def sweep_page(
    rows: Sequence[tuple[dict[str, Any], float]], x: str, y: str, objective: str, path: Path, *, title: str
) -> Path:
    """The objective over two parameters (the best score where other parameters vary) and the ranking."""
    xs = sorted({r[0][x] for r in rows})
    ys = sorted({r[0][y] for r in rows})
    grid: list[list[float | None]] = [[None] * len(xs) for _ in ys]
    for params, score in rows:
        i, j = ys.index(params[y]), xs.index(params[x])
        if np.isfinite(score) and (grid[i][j] is None or score > grid[i][j]):  # type: ignore[operator]
            grid[i][j] = float(score)
    figure = {
        "data": [
            {
                "type": "heatmap",
                "z": grid,
                "x": [str(v) for v in xs],
                "y": [str(v) for v in ys],
                "text": [["" if v is None else f"{v:.2f}" for v in row] for row in grid],
                "texttemplate": "%{text}",
                "colorscale": "Viridis",
                "colorbar": {"title": {"text": objective}},
                "hovertemplate": f"{x} %{{x}}, {y} %{{y}}: %{{z:.4g}}<extra></extra>",
            }
        ],
        "layout": {
            "height": 520,
            "xaxis": {"title": {"text": x}, "type": "category"},
            "yaxis": {"title": {"text": y}, "type": "category"},
        },
    }
    ranked = sorted(rows, key=lambda r: -r[1] if np.isfinite(r[1]) else np.inf)[:MAX_RANKED_ROWS]
    names = sorted(ranked[0][0]) if ranked else []
    table = _table(
        ["rank", *names, objective],
        [[n, *(p[k] for k in names), f"{s:.4g}"] for n, (p, s) in enumerate(ranked, start=1)],
    )
    return _write(path, f"{objective} by {x} and {y}", title, {"chart": figure}, table)


def walkforward_page(
    path: Path,
    *,
    windows: Sequence[tuple[int, int]],
    ts: np.ndarray,
    equity: np.ndarray,
    hold: np.ndarray | None,
    title: str,
    folds: Sequence[dict[str, Any]] = (),
) -> Path:
    """The stitched out-of-sample equity per test window, the windows shaded and numbered (in-sample
    training before each), and the folds' table."""
    ts = np.asarray(ts, dtype=np.int64)
    traces: list[dict[str, Any]] = []
    shapes: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    for fold, (lo, hi) in enumerate(windows, start=1):
        inside = (ts >= lo) & (ts <= hi)
        for curve, name, color in (
            (equity, "out of sample", STRATEGY_COLOR),
            (hold, "buy & hold", HOLD_COLOR),
        ):
            if curve is None:
                continue
            part_ts, part = ts[inside], np.asarray(curve)[inside]
            keep = decimate(part_ts, part, max(PIXEL_COLUMNS // max(len(windows), 1), 50))
            trace = line_trace(part_ts[keep], part[keep], name, color, "y")
            trace.update(legendgroup=name, showlegend=fold == 1)
            traces.append(trace)
        start, end = date_strings(np.array([lo, hi]))
        shapes += [_band(start, end, "#ffdd99", 0.25), _fold_start_line(start)]
        notes.append(_fold_label(start, fold))
    curves = [equity] if hold is None else [equity, hold]
    figure = {
        "data": traces,
        "layout": {
            **base_layout(460),
            "yaxis": {
                "title": {"text": "equity"},
                "tickprefix": "$",
                "type": "log" if wants_log(curves, None) else "linear",
            },
            "shapes": shapes,
            "annotations": notes,
        },
    }
    table = _table(
        ["fold", "train", "test (out of sample)", "params", "efficiency"],
        [
            [
                f["fold"],
                " to ".join(f["train"]),
                " to ".join(f["test"]),
                " ".join(f"{k}={v}" for k, v in f["params"].items()),
                "-" if f["efficiency"] is None else f"{f['efficiency']:.2f}",
            ]
            for f in folds
        ],
    )
    return _write(path, "Walk-forward: out-of-sample equity by fold", title, {"chart": figure}, table)


def _fold_start_line(start: str) -> dict[str, Any]:
    """A dashed vertical line where a fold's out-of-sample window starts."""
    return {
        "type": "line",
        "xref": "x",
        "yref": "paper",
        "x0": start,
        "x1": start,
        "y0": 0,
        "y1": 1,
        "line": {"dash": "dash", "width": 1, "color": "#555"},
    }


def _fold_label(start: str, fold: int) -> dict[str, Any]:
    """The fold's number at the top of its window."""
    return {
        "x": start,
        "y": 1,
        "xref": "x",
        "yref": "paper",
        "text": f"fold {fold}",
        "showarrow": False,
        "xanchor": "left",
        "yanchor": "top",
        "font": {"size": 10},
    }


def montecarlo_page(
    path: Path, bands: Sequence[Sequence[float]], title: str, *, actual: Sequence[float], note: str
) -> Path:
    """Equity percentiles of the resampled paths over trade number (5-95, 25-75, median) and the run's
    own path."""
    p5, p25, p50, p75, p95 = (np.asarray(b, dtype=np.float64) for b in bands)
    x = np.arange(p50.shape[0]).tolist()

    def band(values: np.ndarray, name: str, fill: str | None, alpha: float, show: bool) -> dict[str, Any]:
        trace: dict[str, Any] = {
            "type": "scatter",
            "mode": "lines",
            "x": x,
            "y": np.round(values, 2).tolist(),
            "name": name,
            "line": {"width": 0},
            "showlegend": show,
            "hovertemplate": "trade %{x}: %{y:$,.2f}<extra>" + name + "</extra>",
        }
        if fill:
            trace.update(fill=fill, fillcolor=f"rgba(31,119,180,{alpha})")
        return trace

    real = np.asarray(actual, dtype=np.float64)
    figure = {
        "data": [
            band(p5, "5 %", None, 0, False),
            band(p95, "5-95 % of paths", "tonexty", 0.15, True),
            band(p25, "25 %", None, 0, False),
            band(p75, "25-75 %", "tonexty", 0.35, True),
            {**band(p50, "median path", None, 0, True), "line": {"width": 1.6, "color": STRATEGY_COLOR}},
            {
                "type": "scatter",
                "mode": "lines",
                "x": np.arange(real.shape[0]).tolist(),
                "y": np.round(real, 2).tolist(),
                "name": "the run itself",
                "line": {"color": "black"},
            },
        ],
        "layout": {
            "height": 480,
            "margin": {"l": 80, "r": 20, "t": 30, "b": 40},
            "hovermode": "x",
            "xaxis": {"title": {"text": "trade"}},
            "yaxis": {
                "title": {"text": "equity"},
                "tickprefix": "$",
                "type": "log" if wants_log([p5, p95, real], None) else "linear",
            },
            "legend": {"orientation": "h"},
        },
    }
    return _write(path, "Monte Carlo", title, {"chart": figure}, f'<p class="sub">{html.escape(note)}</p>')


def _band(start: str, end: str, color: str, opacity: float) -> dict[str, Any]:
    return {
        "type": "rect",
        "xref": "x",
        "yref": "paper",
        "x0": start,
        "x1": end,
        "y0": 0,
        "y1": 1,
        "fillcolor": color,
        "opacity": opacity,
        "line": {"width": 0},
        "layer": "below",
    }


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f'<table class="rows"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _write(path: Path, heading: str, subtitle: str, figures: dict[str, Any], below: str) -> Path:
    page = _PAGE.format(
        heading=html.escape(heading),
        subtitle=html.escape(subtitle),
        plotly=plotly_js(),
        figures=script_json(figures),
        below=below,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, page)
    return path


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{heading}</title><link rel="icon" href="data:,">
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.2em auto; max-width: 1200px; color: #222;
  padding: 0 1em; }}
h1 {{ font-size: 1.3em; margin-bottom: 0.1em; }} .sub {{ color: #666; font-size: 0.9em; }}
table.rows {{ border-collapse: collapse; font-size: 0.85em; margin-top: 1em; }}
table.rows th {{ background: #f0f0f0; padding: 3px 8px; text-align: left; }}
table.rows td {{ padding: 2px 8px; border-bottom: 1px solid #eee; font-variant-numeric: tabular-nums; }}
</style>
<script>{plotly}</script>
</head><body>
<h1>{heading}</h1><div class="sub">{subtitle}</div>
<div class="plot" id="chart"></div>
{below}
<script>
const FIGURES = {figures};
for (const [id, fig] of Object.entries(FIGURES)) {{
  Plotly.newPlot(id, fig.data, fig.layout, {{responsive: true, displaylogo: false}});
}}
</script>
</body></html>
"""
