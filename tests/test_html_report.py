"""The HTML report's content, without a browser: what it tells is what the log says (the browser tests
in tests/test_browser.py open the page itself)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from tape.events.backtest import BacktestConfig
from tape.events.report import market_time
from tape.events.risk import RiskConfig
from tape.events.schema import PositionClosed
from tape.store.backtests import backtest
from tape.store.explain import explain_trade
from tape.store.html_jobs import montecarlo_page, sweep_page, walkforward_page
from tape.store.html_report import monthly_returns, report_page, trade_stories, write_run_html
from tape.store.log import EventLog
from tape.store.runs import run_events
from tests.conftest import TapeRunner, assert_clean_failure
from tests.factories import random_walk_bars


def _two_symbol_run(log_path: Path, risk: RiskConfig | None = None) -> tuple[object, list]:
    series = [random_walk_bars("AAA", 400, seed=3), random_walk_bars("BBB", 400, seed=4)]
    config = BacktestConfig(
        symbols=["AAA", "BBB"],
        strategy="sma_cross",
        params={"short": 3, "long": 8},
        risk=risk or RiskConfig(),
    )
    outcome = backtest(config, log_path=log_path, data_path=None, loader=lambda c: series)
    return outcome, series


_WORD = {
    "signal": "signal",
    "order_intent": "intent",
    "risk_accepted": "risk",
    "order_submitted": "order",
    "fill": "fill",
    "position_opened": "opened",
    "position_closed": "closed",
}


@pytest.mark.parametrize("direction", ["long", "both"])
def test_each_trades_story_is_the_events_tape_explain_gives_for_it(log_path: Path, direction: str) -> None:
    # With both, half the trades are shorts: their stories start at the sell signal behind the entry.
    outcome, _ = _two_symbol_run(log_path, RiskConfig(direction=direction, shortable="*"))
    assert (direction == "both") == any(t.side == "short" for t in outcome.report.trades)
    with EventLog.open(log_path, readonly=True) as log:
        stories = trade_stories([r.event for r in run_events(log, outcome.report.run_id)])
        assert len(stories) == len(outcome.report.trades) > 4
        for number, story in enumerate(stories, start=1):
            explained = explain_trade(log, outcome.report.run_id, number)
            told = [line.split(" ")[:2] for line in story.lines("1Day")]
            assert told == [[market_time(r.ts, "1Day"), _WORD.get(r.kind, f"{r.kind}:")] for r in explained]
            assert isinstance(explained[-1].event, PositionClosed)


def test_the_page_carries_every_trade_and_each_drawn_markers_story(log_path: Path) -> None:
    outcome, series = _two_symbol_run(log_path)
    page = report_page(outcome.report, outcome.events, series)
    trades = json.loads(re.search(r"const TRADES = (.*);\n", page).group(1))  # type: ignore[union-attr]
    assert [row[0] for row in trades] == list(range(1, len(outcome.report.trades) + 1))
    assert [row[7] for row in trades] == [round(t.pnl, 2) for t in outcome.report.trades]
    tips = json.loads(re.search(r"const TIPS = (.*);\n", page).group(1))  # type: ignore[union-attr]
    assert set(map(int, tips)) == set(range(1, len(outcome.report.trades) + 1))
    assert all(tip[0].startswith(f"trade {n} ") for n, tip in tips.items())


@pytest.mark.parametrize("direction", ["long", "both"])
def test_the_page_from_the_runs_events_in_memory_is_the_page_from_the_log(
    log_path: Path, tmp_path: Path, direction: str
) -> None:
    # `tape backtest` writes the page from the events it has just appended; `tape report --html` from
    # the log: the two pages are the same bytes.
    outcome, series = _two_symbol_run(log_path, RiskConfig(direction=direction, shortable="*"))
    from_memory = write_run_html(log_path, outcome.report, series, tmp_path / "a.html", events=outcome.events)
    from_log = write_run_html(log_path, outcome.report, series, tmp_path / "b.html")
    assert from_memory.read_bytes() == from_log.read_bytes()
    assert len(outcome.events) == outcome.append.count


def test_monthly_returns_compound_to_the_runs_return() -> None:
    month = 30 * 86_400 * 10**9
    ts = np.arange(0, 26) * month // 2 + 5 * 86_400 * 10**9  # two points a month from January 1970
    equity = 100_000 * np.cumprod(np.r_[1.0, 1 + np.sin(np.arange(25)) / 50])
    years, grid = monthly_returns(ts, equity)
    assert years == [1970, 1971]
    assert grid[1][2:] == [None] * 10  # the run ended in February 1971
    growth = np.prod([1 + v / 100 for row in grid for v in row if v is not None])
    assert abs(growth - equity[-1] / equity[0]) < 1e-3


def test_backtest_with_no_files_writes_no_html_and_report_writes_it_on_request(
    tape: TapeRunner, tmp_path: Path
) -> None:
    done = tape("backtest", "AAPL", "--end", "2003-01-01", "--no-files", "--json")
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "results").exists()
    run_id = json.loads(done.stdout)["run_id"]
    written = tape("report", run_id, "--html-file", "page.html")
    assert written.returncode == 0, written.stderr
    assert "wrote page.html" in written.stdout
    assert (tmp_path / "page.html").read_text().count(run_id) >= 2
    assert_clean_failure(tape("report", run_id, "--html-file", "."), "is a directory")


def _figure(page: Path) -> dict:
    return json.loads(re.search(r"const FIGURES = (.*);\n", page.read_text()).group(1))["chart"]  # type: ignore[union-attr]


def test_sweep_page_shows_the_best_score_of_each_parameter_cell(tmp_path: Path) -> None:
    rows = [
        ({"short": s, "long": lg, "stop": st}, s * 10 + lg + st)
        for s in (5, 10)
        for lg in (20, 50)
        for st in (1, 2)
    ]
    heatmap = _figure(sweep_page(rows, "long", "short", "sharpe", tmp_path / "h.html", title="t"))["data"][0]
    assert heatmap["x"] == ["20", "50"] and heatmap["y"] == ["5", "10"]
    assert heatmap["z"] == [[72.0, 102.0], [122.0, 152.0]]  # the better stop (2) in every cell


def test_walkforward_page_shades_each_out_of_sample_window_and_lists_the_folds(tmp_path: Path) -> None:
    day = 86_400 * 10**9
    ts = np.arange(0, 40) * day
    windows = [(0, 9 * day), (20 * day, 29 * day)]
    inside = (ts <= 9 * day) | ((ts >= 20 * day) & (ts <= 29 * day))
    folds = [
        {"fold": n, "train": ["a", "b"], "test": ["c", "d"], "params": {"short": 5}, "efficiency": 0.5}
        for n in (1, 2)
    ]
    page = walkforward_page(
        tmp_path / "w.html",
        windows=windows,
        ts=ts[inside],
        equity=np.linspace(1e5, 2e5, 20),
        hold=None,
        title="t",
        folds=folds,
    )
    figure = _figure(page)
    assert [s["type"] for s in figure["layout"]["shapes"]].count("rect") == 2
    assert [a["text"] for a in figure["layout"]["annotations"]] == ["fold 1", "fold 2"]
    assert sum(len(t["x"]) for t in figure["data"]) == 20  # no line across the gap between windows
    assert page.read_text().count("short=5") == 2


def test_montecarlo_page_draws_the_fan_and_the_runs_own_path(tmp_path: Path) -> None:
    bands = [np.full(11, v) for v in (90.0, 95.0, 100.0, 105.0, 110.0)]
    actual = np.linspace(100.0, 120.0, 11)
    figure = _figure(montecarlo_page(tmp_path / "m.html", bands, "t", actual=actual, note="what it says"))
    names = [t["name"] for t in figure["data"]]
    assert names[-1] == "the run itself" and figure["data"][-1]["y"][-1] == 120.0
    assert "5-95 % of paths" in names and "median path" in names
