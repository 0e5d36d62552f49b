"""The charts' structure: axes, scales, lines, markers and titles, read back from the Figure objects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection

from tape.events.backtest import BacktestConfig
from tape.events.report import RunReport
from tape.store.backtest_files import equity_chart
from tape.store.backtests import BacktestOutcome, backtest
from tape.store.charts import (
    MAX_MARKERS,
    PIXEL_COLUMNS,
    decimate,
    equity_figure,
    fan_figure,
    heatmap_figure,
    money_text,
    walkforward_figure,
)
from tests.test_resample import _minute_bars, _save


def _run(tmp_path: Path, symbol: str = "AAPL", **config: object) -> BacktestOutcome:
    return backtest(
        BacktestConfig(symbols=[symbol], strategy="sma_cross", **config),  # type: ignore[arg-type]
        log_path=tmp_path / "tape.db",
        data_path=tmp_path / "tape-data.db",
    )


@pytest.fixture(scope="module")
def daily(tmp_path_factory: pytest.TempPathFactory) -> BacktestOutcome:
    """The demo: sma_cross on AAPL 2000-2013, whose buy & hold grows ~14x."""
    return _run(tmp_path_factory.mktemp("daily"))


def _lines(ax) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    return {line.get_label(): np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines()}


def test_the_equity_chart_has_equity_and_buy_and_hold_above_both_drawdowns(daily: BacktestOutcome) -> None:
    fig = equity_chart(daily.report, daily.series)
    top, bottom = fig.axes
    assert set(_lines(top)) == {"sma_cross (net of costs)", "buy & hold"}
    assert set(_lines(bottom)) == {"strategy", "buy & hold"}
    assert _lines(bottom)["buy & hold"].min() < -70  # AAPL's 2000-2003 fall, beside the strategy's own
    assert top.get_ylabel() == "equity (log scale)" and top.get_yscale() == "log"


def test_a_span_over_ten_times_is_log_scaled_unless_linear_is_asked(daily: BacktestOutcome) -> None:
    assert equity_chart(daily.report, daily.series).axes[0].get_yscale() == "log"
    assert equity_chart(daily.report, daily.series, log_scale=False).axes[0].get_yscale() == "linear"


def test_money_axes_read_as_dollars_without_offset_notation(daily: BacktestOutcome) -> None:
    fig = equity_chart(daily.report, daily.series, log_scale=False)
    fig.canvas.draw()
    top = fig.axes[0]
    labels = [t.get_text() for t in top.get_yticklabels() if t.get_text()]
    assert labels and all("$" in label and "e" not in label for label in labels)
    assert top.yaxis.get_offset_text().get_text() == ""
    assert [money_text(v) for v in (2_100_000, 105_000, 950)] == ["$2.1M", "$105k", "$950"]


def test_every_entry_and_exit_is_marked_on_the_curve(daily: BacktestOutcome) -> None:
    top = equity_chart(daily.report, daily.series).axes[0]
    markers = {c.get_label(): c for c in top.collections if isinstance(c, PathCollection)}
    trades = len(daily.report.trades)
    assert set(markers) == {f"entry ({trades})", f"exit ({trades})"}
    assert len(markers[f"entry ({trades})"].get_offsets()) == trades


def test_the_title_names_strategy_params_symbols_period_and_costs(daily: BacktestOutcome) -> None:
    title = equity_chart(daily.report, daily.series).get_suptitle()
    assert "sma_cross short=5 long=20 on AAPL" in title
    assert "2000-03-01 to 2013-03-01" in title
    assert "slippage 5 bps, commission $2.50/order" in title
    assert "{" not in title


def test_the_legend_sits_outside_the_axes(daily: BacktestOutcome) -> None:
    fig = equity_chart(daily.report, daily.series)
    fig.canvas.draw()
    (legend,) = fig.legends
    box = legend.get_window_extent()
    assert not box.overlaps(fig.axes[0].get_window_extent())
    assert not box.overlaps(fig.axes[1].get_window_extent())


def test_an_intraday_curve_is_drawn_per_bar_from_the_starting_cash(tmp_path: Path) -> None:
    minutes = _minute_bars("XYZ").iloc[: 390 * 3]
    from tape.store.bar_files import import_bars_file

    import_bars_file(_save(minutes, tmp_path / "m.csv"), "XYZ", data_path=tmp_path / "tape-data.db")
    outcome = _run(tmp_path, "XYZ", timeframe="1Min", params={"short": 10, "long": 40})
    report: RunReport = outcome.report
    assert len(report.marks) == 3  # marked once a session
    curve = _lines(equity_chart(report, outcome.series).axes[0])["sma_cross (net of costs)"]
    assert len(curve) == 3 * 390 + 1
    assert curve[0] == 100_000.0
    assert curve[-1] == pytest.approx(report.marks[-1].equity, abs=0.01)


def test_a_long_curve_is_decimated_per_pixel_column_keeping_its_extremes() -> None:
    rng = np.random.default_rng(3)
    x = np.arange(200_000)
    y = np.cumsum(rng.normal(size=x.size))
    keep = decimate(x, y)
    assert len(keep) <= 2 * PIXEL_COLUMNS + 2
    assert {int(np.argmin(y)), int(np.argmax(y)), 0, x.size - 1} <= set(keep.tolist())


def test_thousands_of_trade_markers_are_thinned_and_say_so() -> None:
    ts = np.arange(10_000, dtype=np.int64) * 86_400_000_000_000
    equity = np.linspace(100_000, 120_000, ts.size)
    at = ts[::2]
    fig = equity_figure(
        ts=ts,
        equity=equity,
        hold=None,
        entries=(at, equity[::2]),
        exits=(at, equity[::2]),
        title="t",
        subtitle="s",
        strategy_label="x",
    )
    markers = [c for c in fig.axes[0].collections if isinstance(c, PathCollection)]
    assert all(len(c.get_offsets()) <= MAX_MARKERS for c in markers)
    assert markers[0].get_label() == "entry (1 in 13 of 5,000 shown)"


def test_the_heatmap_uses_a_perceptual_colormap_contrasting_labels_and_a_full_title() -> None:
    rows = [({"short": s, "long": g}, float(s + g)) for s in (5, 10, 20) for g in (30, 50, 100)]
    fig = heatmap_figure(rows, "short", "long", "sharpe", title="AAPL · sma_cross · 2004-01-01 to 2006-12-31")
    ax = fig.axes[0]
    assert ax.images[0].get_cmap().name == "viridis"
    colors = {t.get_text(): t.get_color() for t in ax.texts}
    assert colors["35.00"] == "white" and colors["120.00"] == "black"  # dark purple, bright yellow
    assert "AAPL · sma_cross · 2004-01-01 to 2006-12-31" in ax.get_title()


def test_walk_forward_draws_each_fold_apart_with_boundaries_and_buy_and_hold() -> None:
    day = 86_400_000_000_000
    windows = [(0, 9 * day), (20 * day, 29 * day), (40 * day, 49 * day)]
    ts = np.concatenate([np.arange(lo, hi + 1, day) for lo, hi in windows])
    equity = np.linspace(100_000, 110_000, ts.size)
    fig = walkforward_figure(windows=windows, ts=ts, equity=equity, hold=equity * 0.99, title="wf")
    ax = fig.axes[0]
    strategy = [line for line in ax.get_lines() if line.get_color() == "#1f77b4"]
    assert len(strategy) == 3  # one line per test window: nothing drawn across the gaps
    for line, (lo, hi) in zip(strategy, windows, strict=True):
        xs = pd.to_datetime(line.get_xdata()).asi8
        assert xs.min() >= lo and xs.max() <= hi
    assert {t.get_text() for t in ax.texts} == {"fold 1", "fold 2", "fold 3"}
    assert "buy & hold" in [line.get_label() for line in ax.get_lines()]


def test_the_monte_carlo_fan_shows_the_runs_own_path() -> None:
    bands = [np.linspace(100_000, v, 50) for v in (90_000, 95_000, 100_000, 105_000, 110_000)]
    actual = np.linspace(100_000, 103_000, 50)
    fig = fan_figure(bands, "Monte Carlo", actual=actual, note="bootstrap: could this have been luck?")
    lines = _lines(fig.axes[0])
    assert np.array_equal(lines["the run itself"], actual)
    assert "could this have been luck?" in fig.axes[0].get_title()
