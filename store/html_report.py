"""The interactive HTML report of a run: one self-contained file that opens offline in any browser.

Equity against buy & hold (log/linear toggle) with its drawdown, each symbol's price with the entries,
exits and the indicator values the strategy recorded in its Signal events, a monthly-returns heatmap, the
metrics and a sortable trade table. Hovering a trade marker shows the trade's story as `tape explain`
tells it (signal, risk check, orders, fills, exit). Every number is read from the run's events (those
just appended, still in memory, or read back from the log); the bars only draw the price line and buy &
hold, as in the PNG chart.

plotly.js is inlined from the plotly package (no CDN). The figures are written as plain plotly JSON (no
plotly.py figure objects: they cost more to build than the whole page), and long curves are decimated
per pixel column exactly as the PNG charts are, so a 500k-bar run writes a page the size of a short one.
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import numpy as np

from tape.events.bars import BarSeries
from tape.events.render import summarize
from tape.events.report import RunReport, market_time, price_text
from tape.events.schema import (
    Event,
    Fill,
    OrderIntent,
    OrderSubmitted,
    PositionClosed,
    PositionOpened,
    RiskAccepted,
    RiskRejected,
    Signal,
    kind_of,
)
from tape.events.timeframes import is_intraday
from tape.store import atomic
from tape.store.backtest_files import buy_and_hold_curve, chart_title, equity_curve
from tape.store.charts import PIXEL_COLUMNS, decimate, drawdown_pct, wants_log
from tape.store.explain import trade_story_start

HTML_MARKERS = 1000  # trade markers per kind and symbol drawn before they are thinned
STORY_LINES = 12  # events of a trade's story shown on hover (the explain command shows all)
TABLE_ROWS = 1000  # trade rows in the page's table at a time (sorting reorders all of them)
MAX_PRICE_CHARTS = 6  # symbols drawn with their own price chart
STRATEGY_COLOR, HOLD_COLOR, ENTRY_COLOR, EXIT_COLOR = "#1f77b4", "#7f7f7f", "#2ca02c", "#d62728"

METRICS: list[tuple[str, str, str]] = [
    ("total_trades", "Trades", "{:,}"),
    ("total_pnl", "Net P&L", "${:,.2f}"),
    ("return_pct", "Return", "{:.2f} %"),
    ("buy_hold_return_pct", "Buy & hold", "{:.2f} %"),
    ("win_rate", "Win rate", "{:.2f} %"),
    ("max_drawdown_pct", "Max drawdown", "{:.2f} %"),
    ("sharpe", "Sharpe", "{:.2f}"),
    ("sortino", "Sortino", "{:.2f}"),
    ("profit_factor", "Profit factor", "{:.2f}"),
    ("exposure_pct", "Exposure", "{:.2f} %"),
    ("total_commission", "Commission", "${:,.2f}"),
    ("total_slippage", "Slippage", "${:,.2f}"),
    ("avg_win", "Avg win", "${:,.2f}"),
    ("avg_loss", "Avg loss", "${:,.2f}"),
    ("final_equity", "Final equity", "${:,.2f}"),
]


def html_report_path(root: Path, report: RunReport, day: str) -> Path:
    """``results/report_{symbols}_{day}_{run}.html`` under ``root``, beside the run's JSON and CSV."""
    from tape.store.backtest_files import symbols_label

    label = symbols_label(report.symbols, report.config.get("dataset") or "")
    return root / "results" / f"report_{label}_{day}_{report.run_id}.html"


def write_html_report(
    report: RunReport, events: Sequence[Event], series: Sequence[BarSeries], path: Path
) -> Path:
    """Write the run's page (``events``: the run's, in log order) to ``path``, whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, report_page(report, events, series))
    return path


# --------------------------------------------------------------------------- what the log says


class Story(NamedTuple):
    """Where one trade's events lie: its symbol's events up to ``stop`` (its PositionClosed), from the
    signal behind its entry (searched only when the story is told: a long run draws a sample)."""

    events: list[Event]
    stop: int

    def lines(self, timeframe: str) -> list[str]:
        """The trade's story, one short line per event."""
        start = trade_story_start(self.events, self.stop - 1)
        return [_story_line(r, timeframe) for r in self.events[start : self.stop]]


def trade_stories(events: Iterable[Event]) -> list[Story]:
    """For each closed trade (in closing order), the events that tell why it happened: the signal with
    its reason and indicator values, the risk check with its numbers, every order and fill, the close.
    The same events `tape explain` prints (the symbol's events from the buy signal behind the entry up
    to the PositionClosed), found in one pass over the run."""
    by_symbol: dict[str, list[Event]] = defaultdict(list)
    stories: list[Story] = []
    for event in events:
        symbol = getattr(event, "symbol", None)
        if symbol is None:
            continue
        mine = by_symbol[symbol]
        mine.append(event)
        if event.__class__ is PositionClosed:
            stories.append(Story(mine, len(mine)))
    return stories


def _story_line(e: Any, timeframe: str) -> str:
    """One event of a trade's story, shorter than `tape explain`'s line: ids and repeats left out."""
    when = market_time(e.ts, timeframe)
    if isinstance(e, Signal):
        values = " ".join(f"{k} {v:.6g}" for k, v in e.values.items())
        return f"{when} signal {e.side}: {e.reason or '-'}" + (f" ({values})" if values else "")
    if isinstance(e, RiskAccepted | RiskRejected):
        checks = ", ".join(f"{k} {v:,.6g}" for k, v in list(e.checks.items())[:6])
        verdict = "accepted" if isinstance(e, RiskAccepted) else f"rejected by {e.rule}: {e.message}"
        return f"{when} risk {verdict}" + (f" ({checks})" if checks else "")
    if isinstance(e, OrderSubmitted):
        prices = " ".join(
            f"{k} {price_text(v)}"
            for k, v in (("limit", e.limit_price), ("stop", e.stop_price))
            if v is not None
        )
        return f"{when} order {e.side} {e.qty:g} {e.order_type} {prices} ({e.reason})".replace("  ", " ")
    if isinstance(e, Fill):
        fill = f"{e.side} {e.qty:g} @ {price_text(e.price)} ({e.reason})"
        return f"{when} fill {fill}, commission {e.commission:.2f}"
    if isinstance(e, PositionOpened):
        levels = " ".join(
            f"{k} {price_text(v)}" for k, v in (("stop", e.stop_price), ("target", e.take_profit_price)) if v
        )
        return f"{when} opened {e.qty:g} @ {price_text(e.entry_price)}" + (f", {levels}" if levels else "")
    if isinstance(e, PositionClosed):
        return f"{when} closed ({e.exit_reason}): net {e.net_pnl:+,.2f}"
    if isinstance(e, OrderIntent):
        return f"{when} intent {e.side} {e.qty:g} ({e.reason})"
    return f"{when} {kind_of(e)}: {summarize(e)}"


def indicator_values(events: Iterable[Event]) -> dict[str, dict[str, tuple[list[int], list[float]]]]:
    """Per symbol and indicator, the values the strategy recorded with its signals (time, value)."""
    out: dict[str, dict[str, tuple[list[int], list[float]]]] = defaultdict(dict)
    for event in events:
        if event.__class__ is Signal:
            for name, value in event.values.items():
                ts, values = out[event.symbol].setdefault(name, ([], []))
                ts.append(event.ts)
                values.append(value)
    return out


def monthly_returns(ts: np.ndarray, equity: np.ndarray) -> tuple[list[int], list[list[float | None]]]:
    """Years and, per year, the 12 monthly returns in % (month-end equity over the previous month-end;
    the first month against the starting equity); None where the run did not cover the month."""
    if not len(ts):
        return [], []
    months = np.asarray(ts, dtype=np.int64).astype("datetime64[ns]").astype("datetime64[M]").astype(np.int64)
    last = np.r_[np.flatnonzero(months[1:] != months[:-1]), len(months) - 1]
    ends = equity[last]
    before = np.r_[equity[0], ends[:-1]]
    years = sorted({int(m // 12 + 1970) for m in months[last]})
    grid: list[list[float | None]] = [[None] * 12 for _ in years]
    for month, end, start in zip(months[last], ends, before, strict=True):
        if start > 0:
            grid[years.index(int(month // 12 + 1970))][int(month % 12)] = round((end / start - 1) * 100, 2)
    return years, grid


# --------------------------------------------------------------------------- figures (plotly JSON)


def date_strings(ts: np.ndarray) -> list[str]:
    """Bar times as ISO strings plotly reads as dates (UTC wall clock to the minute)."""
    return np.datetime_as_string(np.asarray(ts, dtype=np.int64).astype("datetime64[ns]"), unit="m").tolist()


def _thin(n: int) -> int:
    return max(1, math.ceil(n / HTML_MARKERS))


def equity_figure(
    report: RunReport, series: Sequence[BarSeries], ts: np.ndarray, equity: np.ndarray
) -> dict[str, Any]:
    """Equity at ``ts`` and buy & hold (money axis with a log/linear toggle) over their drawdowns."""
    keep = decimate(ts, equity, PIXEL_COLUMNS)
    traces: list[dict[str, Any]] = [
        line_trace(ts[keep], equity[keep], f"{report.strategy} (net of costs)", STRATEGY_COLOR, "y"),
        line_trace(
            ts[keep], drawdown_pct(equity)[keep], "strategy drawdown", STRATEGY_COLOR, "y2", fill=True
        ),
    ]
    if series:
        hold = buy_and_hold_curve(report, series, ts)
        keep_hold = decimate(ts, hold, PIXEL_COLUMNS)
        traces.insert(1, line_trace(ts[keep_hold], hold[keep_hold], "buy & hold", HOLD_COLOR, "y"))
        traces.append(
            line_trace(ts[keep_hold], drawdown_pct(hold)[keep_hold], "buy & hold drawdown", HOLD_COLOR, "y2")
        )
    log = wants_log([equity] + ([hold] if series else []), None)
    return {
        "data": traces,
        "layout": {
            **base_layout(420),
            "yaxis": {
                "title": {"text": "equity"},
                "domain": [0.32, 1],
                "tickprefix": "$",
                "type": "log" if log else "linear",
            },
            "yaxis2": {"title": {"text": "drawdown"}, "domain": [0, 0.26], "ticksuffix": " %"},
            "updatemenus": [
                {
                    "type": "buttons",
                    "direction": "right",
                    "x": 0,
                    "y": 1.12,
                    "xanchor": "left",
                    "active": 1 if log else 0,
                    "buttons": [
                        {"label": "linear", "method": "relayout", "args": [{"yaxis.type": "linear"}]},
                        {"label": "log", "method": "relayout", "args": [{"yaxis.type": "log"}]},
                    ],
                }
            ],
        },
    }


def price_figure(
    report: RunReport,
    bars: BarSeries | None,
    symbol: str,
    indicators: dict[str, tuple[list[int], list[float]]],
) -> dict[str, Any]:
    """One symbol's closes, the strategy's recorded indicator values, and its trades' entries and exits;
    a marker's hover text is its trade's story."""
    traces: list[dict[str, Any]] = []
    if bars is not None and len(bars):
        keep = decimate(bars.ts, bars.close, PIXEL_COLUMNS)
        traces.append(line_trace(bars.ts[keep], bars.close[keep], f"{symbol} close", "#444444", "y"))
    for name, (ts, values) in sorted(indicators.items()):
        stamps, vals = np.asarray(ts, dtype=np.int64), np.asarray(values, dtype=np.float64)
        keep = decimate(stamps, vals, PIXEL_COLUMNS)
        trace = line_trace(stamps[keep], vals[keep], f"{name} (at signals)", None, "y")
        trace.update(mode="lines+markers", marker={"size": 3}, line={"width": 1, "dash": "dot"})
        traces.append(trace)
    mine = [(n, t) for n, t in enumerate(report.trades, start=1) if t.symbol == symbol]
    stride = _thin(len(mine))
    shown = mine[::stride]
    for side, color, symbol_name in (
        ("entry", ENTRY_COLOR, "triangle-up"),
        ("exit", EXIT_COLOR, "triangle-down"),
    ):
        at = [t.entry_ts if side == "entry" else t.exit_ts for _, t in shown]
        price = [t.entry_price if side == "entry" else t.exit_price for _, t in shown]
        label = f"{side} ({len(mine):,})" if stride == 1 else f"{side} (1 in {stride} of {len(mine):,})"
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": label,
                "x": date_strings(np.asarray(at, dtype=np.int64)),
                "y": price,
                "customdata": [n for n, _ in shown],
                "hoverinfo": "none",  # the page draws the trade's story in its own tooltip
                "marker": {"symbol": symbol_name, "size": 9, "color": color},
            }
        )
    return {
        "data": traces,
        "layout": {
            **base_layout(360),
            "yaxis": {"title": {"text": f"{symbol} price"}, "tickprefix": "$"},
            # Every trace's value at the pointer's time: a trade marker near it gets its story shown.
            "hovermode": "x",
        },
    }


def trade_tip(n: int, trade: Any, story: list[str]) -> list[str]:
    """A trade marker's tooltip: what the trade was, then its story (at most STORY_LINES lines)."""
    head = (
        f"trade {n} {trade.symbol}: {trade.qty:g} @ {price_text(trade.entry_price)} → "
        f"{price_text(trade.exit_price)} ({trade.exit_reason}), net {trade.pnl:+,.2f}"
    )
    if len(story) > STORY_LINES:
        story = [*story[: STORY_LINES - 1], f"… {len(story) - STORY_LINES + 1} more (tape explain)"]
    return [head, *story]


def heatmap_figure(years: list[int], grid: list[list[float | None]]) -> dict[str, Any]:
    """Monthly returns in %, red to green around zero, each cell labelled."""
    text = [["" if v is None else f"{v:+.1f}" for v in row] for row in grid]
    return {
        "data": [
            {
                "type": "heatmap",
                "z": grid,
                "x": ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
                "y": [str(y) for y in years],
                "text": text,
                "texttemplate": "%{text}",
                "colorscale": [[0, EXIT_COLOR], [0.5, "#f7f7f7"], [1, ENTRY_COLOR]],
                "zmid": 0,
                "hovertemplate": "%{y} %{x}: %{z:.2f} %<extra></extra>",
                "colorbar": {"title": {"text": "%"}},
            }
        ],
        "layout": {
            "height": max(160, 26 * len(years) + 90),
            "margin": {"l": 50, "r": 20, "t": 10, "b": 30},
            "yaxis": {"type": "category", "autorange": "reversed"},
        },
    }


def line_trace(
    ts: np.ndarray, y: np.ndarray, name: str, color: str | None, axis: str, *, fill: bool = False
) -> dict[str, Any]:
    """A plotly line of ``y`` over bar times ``ts`` on y axis ``axis`` (filled to zero when ``fill``)."""
    trace: dict[str, Any] = {
        "type": "scatter",
        "mode": "lines",
        "name": name,
        "x": date_strings(ts),
        "y": np.round(np.asarray(y, dtype=np.float64), 6).tolist(),
        "yaxis": axis,
        "line": {"width": 1.3},
        "hovertemplate": "%{x}: %{y:,.2f}<extra>" + html.escape(name) + "</extra>",
    }
    if color:
        trace["line"]["color"] = color
    if fill:
        trace["fill"] = "tozeroy"
    return trace


def base_layout(height: int) -> dict[str, Any]:
    """The layout every time chart of the pages shares."""
    return {
        "height": height,
        "margin": {"l": 70, "r": 20, "t": 40, "b": 30},
        "legend": {"orientation": "h", "y": -0.12},
        "hovermode": "closest",
        "xaxis": {"type": "date"},
    }


# --------------------------------------------------------------------------- the page


def report_page(report: RunReport, events: Sequence[Event], series: Sequence[BarSeries]) -> str:
    """The whole page as one string: styles, plotly.js, the figures' JSON and the tables."""
    stories = trade_stories(events)
    indicators = indicator_values(events)
    ts, equity = equity_curve(report, series)
    years, grid = monthly_returns(ts, equity)
    by_symbol = {s.symbol: s for s in series}
    figures = {"equity": equity_figure(report, series, ts, equity), "months": heatmap_figure(years, grid)}
    for i, symbol in enumerate(report.symbols[:MAX_PRICE_CHARTS]):
        figures[f"price{i}"] = price_figure(report, by_symbol.get(symbol), symbol, indicators[symbol])
    shown = sorted(
        {n for fig in figures.values() for trace in fig["data"] for n in trace.get("customdata", [])}
    )
    tips = {
        n: trade_tip(
            n, report.trades[n - 1], stories[n - 1].lines(report.timeframe) if n <= len(stories) else []
        )
        for n in shown
    }
    title, subtitle = chart_title(report)
    prices = "".join(
        f'<h2>{html.escape(s)}: price, trades and indicators</h2><div class="plot" id="price{i}"></div>'
        for i, s in enumerate(report.symbols[:MAX_PRICE_CHARTS])
    )
    return _PAGE.format(
        title=html.escape(title),
        subtitle=html.escape(subtitle),
        run_id=html.escape(report.run_id),
        metrics=_metrics_table(report),
        prices=prices,
        plotly=plotly_js(),
        figures=script_json(figures),
        tips=script_json(tips),
        trades=script_json(_trade_table_rows(report)),
        shown_rows=TABLE_ROWS,
        intraday="true" if is_intraday(report.timeframe) else "false",
        columns=script_json([[label, kind] for _, label, kind in _TRADE_HEADERS]),
    )


def script_json(value: Any) -> str:
    """JSON safe to place inside a <script> element."""
    return msgspec.json.encode(value, enc_hook=_plain).decode().replace("</", "<\\/")


def _plain(value: Any) -> Any:
    """numpy scalars (prices straight from the bars) as the Python numbers JSON knows."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} into the page")


def _metrics_table(report: RunReport) -> str:
    rows = []
    for key, label, pattern in METRICS:
        value = report.metrics.get(key)
        rows.append(f"<tr><th>{label}</th><td>{'n/a' if value is None else pattern.format(value)}</td></tr>")
    if report.rejections:
        text = ", ".join(f"{k} {v}" for k, v in report.rejections.items())
        rows.append(f"<tr><th>Risk rejections</th><td>{html.escape(text)}</td></tr>")
    return '<table class="metrics">' + "".join(rows) + "</table>"


_TRADE_HEADERS = [
    ("n", "#", "num"),
    ("symbol", "symbol", "text"),
    ("entry_time", "entry", "time"),
    ("entry_price", "entry price", "num"),
    ("exit_time", "exit", "time"),
    ("exit_price", "exit price", "num"),
    ("qty", "qty", "num"),
    ("pnl", "net P&L", "num"),
    ("exit_reason", "reason", "text"),
]


def _trade_table_rows(report: RunReport) -> list[list[Any]]:
    """The trade table's rows as values: the trades CSV's columns, times as epoch milliseconds (the
    page writes them as the exchange's local clock, and sorts on the numbers)."""
    return [
        [
            n,
            t.symbol,
            t.entry_ts // 1_000_000,
            t.entry_price,
            t.exit_ts // 1_000_000,
            t.exit_price,
            t.qty,
            round(t.pnl, 2),
            t.exit_reason,
        ]
        for n, t in enumerate(report.trades, start=1)
    ]


_plotly_cache: list[str] = []


def plotly_js() -> str:
    """plotly.js as the plotly package ships it (read once per process)."""
    if not _plotly_cache:
        _plotly_cache.append(
            resources.files("plotly").joinpath("package_data", "plotly.min.js").read_text(encoding="utf-8")
        )
    return _plotly_cache[0]


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · run {run_id}</title><link rel="icon" href="data:,">
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.2em auto; max-width: 1200px; color: #222;
  padding: 0 1em; }}
h1 {{ font-size: 1.3em; margin-bottom: 0.1em; }} h2 {{ font-size: 1.05em; margin: 1.4em 0 0.3em; }}
.sub {{ color: #666; font-size: 0.9em; }}
table {{ border-collapse: collapse; font-size: 0.85em; }}
.metrics th {{ text-align: left; font-weight: normal; color: #666; padding: 1px 1.2em 1px 0; }}
.metrics td {{ text-align: right; font-variant-numeric: tabular-nums; }}
.trades th {{ cursor: pointer; background: #f0f0f0; padding: 3px 8px; position: sticky; top: 0;
  user-select: none; }}
.trades th.asc::after {{ content: " ▲"; }} .trades th.desc::after {{ content: " ▼"; }}
.trades td {{ padding: 2px 8px; border-bottom: 1px solid #eee; font-variant-numeric: tabular-nums; }}
.trades td.num {{ text-align: right; }}
.scroll {{ max-height: 480px; overflow: auto; border: 1px solid #ddd; }}
.top {{ display: flex; gap: 2em; align-items: flex-start; flex-wrap: wrap; }}
.top .plot {{ flex: 1; min-width: 600px; }}
#tip {{ position: fixed; display: none; z-index: 10; background: #fffff4; border: 1px solid #999;
  padding: 6px 8px; font: 11px monospace; white-space: pre-wrap; pointer-events: none; max-width: 85vw;
  box-shadow: 2px 2px 6px rgba(0,0,0,.2); }}
#tip div:first-child {{ font-weight: bold; }}
</style>
<script>{plotly}</script>
</head><body>
<h1>{title}</h1><div class="sub">{subtitle} · run {run_id}</div>
<div class="top"><div class="plot" id="equity"></div>{metrics}</div>
{prices}
<h2>Monthly returns</h2><div class="plot" id="months"></div>
<h2>Trades</h2><div class="sub" id="trades-note"></div>
<div class="scroll"><table id="trades" class="trades"><thead><tr></tr></thead><tbody></tbody></table></div>
<div id="tip"></div>
<script>
const FIGURES = {figures};
const TIPS = {tips};
const TRADES = {trades};
const COLUMNS = {columns};
const SHOWN_ROWS = {shown_rows};
const INTRADAY = {intraday};
const tip = document.getElementById("tip");
for (const [id, fig] of Object.entries(FIGURES)) {{
  const el = document.getElementById(id);
  Plotly.newPlot(el, fig.data, fig.layout, {{responsive: true, displaylogo: false}});
  el.on("plotly_hover", ev => {{
    const p = ev.points.find(p => p.customdata !== undefined && TIPS[p.customdata]);
    if (!p) return;
    tip.replaceChildren(...TIPS[p.customdata].map(line => {{
      const d = document.createElement("div"); d.textContent = line; return d; }}));
    const e = ev.event, w = window.innerWidth;
    tip.style.display = "block";
    tip.style.left = Math.max(4, Math.min(e.clientX + 14, w - tip.offsetWidth - 8)) + "px";
    tip.style.top = (e.clientY + 14 + tip.offsetHeight > window.innerHeight ?
      e.clientY - tip.offsetHeight - 10 : e.clientY + 14) + "px";
  }});
  el.on("plotly_unhover", () => {{ tip.style.display = "none"; }});
}}
const money = v => v.toLocaleString("en-US", {{minimumFractionDigits: 2, maximumFractionDigits: 2}});
const price = v => {{
  if (!isFinite(v) || v === 0) return v.toFixed(2);
  const d = Math.max(2, 5 - Math.floor(Math.log10(Math.abs(v))));
  const text = v.toLocaleString("en-US", {{minimumFractionDigits: d, maximumFractionDigits: d}});
  const [whole, frac] = text.split(".");
  return whole + "." + frac.slice(0, 2) + frac.slice(2).replace(/0+$/, "");
}};
const clock = new Intl.DateTimeFormat("en-CA", {{timeZone: "America/New_York", year: "numeric",
  month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23"}});
const localTime = ms => {{
  const p = Object.fromEntries(clock.formatToParts(new Date(ms)).map(x => [x.type, x.value]));
  const day = `${{p.year}}-${{p.month}}-${{p.day}}`;
  return INTRADAY ? `${{day}} ${{p.hour}}:${{p.minute}}` : day;
}};
const cell = (v, i) => COLUMNS[i][1] === "time" ? localTime(v) :
  COLUMNS[i][0].endsWith("price") ? price(v) : COLUMNS[i][0] === "net P&L" ? money(v) : String(v);
function renderTrades(rows) {{
  const body = document.querySelector("#trades tbody");
  body.replaceChildren(...rows.slice(0, SHOWN_ROWS).map(r => {{
    const tr = document.createElement("tr");
    r.forEach((v, i) => {{
      const td = document.createElement("td");
      td.textContent = cell(v, i);
      if (COLUMNS[i][1] !== "text") td.className = "num";
      tr.append(td);
    }});
    return tr;
  }}));
  document.getElementById("trades-note").textContent = rows.length > SHOWN_ROWS ?
    `the first ${{SHOWN_ROWS.toLocaleString()}} of ${{rows.length.toLocaleString()}} trades in this order; ` +
    "click a column to sort all of them" : `${{rows.length.toLocaleString()}} trades; click a column to sort`;
}}
const head = document.querySelector("#trades thead tr");
let order = TRADES.slice();
COLUMNS.forEach(([label, kind], col) => {{
  const th = document.createElement("th");
  th.textContent = label; th.title = "click to sort";
  th.addEventListener("click", () => {{
    const asc = !th.classList.contains("asc");
    head.querySelectorAll("th").forEach(h => h.classList.remove("asc", "desc"));
    th.classList.add(asc ? "asc" : "desc");
    order = TRADES.slice().sort((a, b) => (a[col] < b[col] ? -1 : a[col] > b[col] ? 1 : 0) * (asc ? 1 : -1));
    renderTrades(order);
  }});
  head.append(th);
}});
renderTrades(order);
</script>
</body></html>
"""


def write_run_html(
    log_path: Path,
    report: RunReport,
    series: Sequence[BarSeries],
    path: Path,
    events: Sequence[Event] | None = None,
) -> Path:
    """Write the run's page to ``path`` from ``events`` (the run just appended, still in memory) or,
    without them, from the run's events read back from the log (read-only)."""
    if events is None:
        from tape.store.log import EventLog
        from tape.store.runs import run_events

        with EventLog.open(log_path, readonly=True) as log:
            events = [r.event for r in run_events(log, report.run_id)]
    return write_html_report(report, events, series, path)


def run_bars(report: RunReport, data_path: Path | None) -> list[BarSeries]:
    """The bars a backtest read, from the market-data store, for its price and buy & hold lines; none
    when they are not there any more or the run is not a backtest (the page then draws without them)."""
    from tape.events.backtest import config_of
    from tape.events.errors import TapeError
    from tape.store.backtests import load_config_bars

    if report.mode != "backtest":
        return []
    try:
        return load_config_bars(config_of(report.config), data_path)
    except (TapeError, ValueError, TypeError):
        return []
