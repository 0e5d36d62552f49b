"""`import tape`: the Python API returns pandas, logs like the CLI and agrees with it to the last digit."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import tape as api
from tape.events.strategies.sma_cross import SmaCross
from tape.store.log import EventLog
from tape.store.market import SAMPLE_FILE
from tests.conftest import REPO, TapeRunner

WINDOW = {"start": "2004-01-01", "end": "2006-12-31"}
CLI_WINDOW = ["--start", WINDOW["start"], "--end", WINDOW["end"]]


@pytest.fixture(autouse=True)
def _registry_restored() -> Iterator[None]:
    """A Strategy class passed to the API is registered in this process: undo it after each test."""
    from tape.events.strategies import REGISTRY

    before = dict(REGISTRY)
    yield
    REGISTRY.clear()
    REGISTRY.update(before)


def _cli_json(tape_cli: TapeRunner, *args: str) -> dict:
    result = tape_cli(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _aapl_bars() -> pd.DataFrame:
    """AAPL's bundled daily bars, 2003 to 2007, as a user would hold them: a date-indexed OHLCV frame."""
    rows = pd.read_csv(SAMPLE_FILE, dtype={"symbol": str, "date": str})
    rows = rows[(rows["symbol"] == "AAPL") & (rows["date"] >= "2003-01-01") & (rows["date"] < "2008-01-01")]
    frame = rows.drop(columns="symbol").set_index("date")
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.index), name="date")
    return frame


def _log_rows(path: Path) -> int:
    with EventLog.open(path, readonly=True) as log:
        return log.count()


def test_import_tape_loads_no_heavy_module() -> None:
    code = (
        "import sys, tape; tape.Strategy; tape.ConfigError;"
        "print(sorted(m for m in ('ray', 'matplotlib', 'alpaca', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_public_name_is_documented_and_listed() -> None:
    assert set(dir(api)) >= set(api.__all__)
    for name in api.__all__:
        value = getattr(api, name)
        if callable(value):
            assert (value.__doc__ or "").strip(), name
    assert api.Strategy is SmaCross.__mro__[1]
    assert issubclass(api.ConfigError, ValueError)


def test_backtest_summary_equals_the_cli_json(tape: TapeRunner, tmp_path: Path) -> None:
    options = ["-p", "short=10", "-p", "long=30", "--slippage-bps", "2", "--max-positions", "2"]
    cli = _cli_json(tape, "backtest", "AAPL", "MSFT", *CLI_WINDOW, *options, "--no-files")
    result = api.backtest(
        ["AAPL", "MSFT"],
        "sma_cross",
        params={"short": 10, "long": 30},
        slippage_bps=2,
        max_positions=2,
        log=tmp_path / "api.db",
        data_path=tmp_path / "tape-data.db",
        **WINDOW,
    )
    assert result.summary == cli
    assert result.run_id == cli["run_id"]  # same config, data and code: the same run


def test_optimize_summary_equals_the_cli_json(ray_session: None, tape: TapeRunner, tmp_path: Path) -> None:
    cli = _cli_json(
        tape, "optimize", "AAPL", *CLI_WINDOW, "-g", "short=5,10", "-g", "long=30,50", "--workers", "1"
    )
    job = api.optimize(
        "AAPL",
        "sma_cross",
        grid={"short": [5, 10], "long": [30, 50]},
        log=tmp_path / "api.db",
        charts=tmp_path / "charts",  # where the command, run in tmp_path, drew its heatmap
        **WINDOW,
    )
    assert job.summary == cli
    assert list(job.table["score"]) == [r["score"] for r in cli["results"]]


def test_walkforward_summary_equals_the_cli_json(ray_session: None, tape: TapeRunner, tmp_path: Path) -> None:
    args = ["AAPL", "--start", "2002-01-01", "--end", "2008-12-31", "-g", "short=5,10", "--folds", "2"]
    cli = _cli_json(tape, "walkforward", *args, "--workers", "1")
    job = api.walkforward(
        "AAPL",
        grid={"short": [5, 10]},
        folds=2,
        start="2002-01-01",
        end="2008-12-31",
        log=tmp_path / "api.db",
        charts=tmp_path / "charts",
    )
    assert job.summary == cli
    assert len(job.table) == 2


def test_validate_summary_equals_the_cli_json(ray_session: None, tape: TapeRunner, tmp_path: Path) -> None:
    cli = _cli_json(tape, "validate", "AAPL", "IBM", "-s", "macd", "--periods", "2", "--workers", "1")
    job = api.validate(["AAPL", "IBM"], "macd", periods=2, log=tmp_path / "api.db")
    assert job.summary == cli
    assert set(job.table.index) == {"AAPL", "IBM"}


@pytest.mark.parametrize("index", ["naive + tz=", "tz-aware"])
def test_dataframe_input_equals_the_same_bars_imported(tape: TapeRunner, tmp_path: Path, index: str) -> None:
    bars = _aapl_bars()
    csv = tmp_path / "xyz.csv"
    bars.to_csv(csv)
    assert tape("data", "import", str(csv), "--symbol", "XYZ").returncode == 0
    imported = api.backtest("XYZ", log=tmp_path / "a.db", data_path=tmp_path / "tape-data.db", **WINDOW)

    if index == "tz-aware":
        bars.index = bars.index.tz_localize("America/New_York")
        given = api.backtest({"xyz": bars}, log=tmp_path / "b.db", **WINDOW)
    else:
        given = api.backtest({"xyz": bars}, tz="America/New_York", log=tmp_path / "b.db", **WINDOW)

    assert given.outcome.series[0].fingerprint().sha256 == imported.outcome.series[0].fingerprint().sha256
    without_id = {k: v for k, v in given.summary.items() if k != "run_id"}
    assert without_id == {k: v for k, v in imported.summary.items() if k != "run_id"}
    assert without_id["total_trades"] > 0


def test_trade_prices_are_the_logged_fill_prices_exactly(tmp_path: Path) -> None:
    result = api.backtest("AAPL", "sma_cross", log=tmp_path / "t.db", **WINDOW)
    trades, fills = result.trades, result.fills
    assert len(trades) == result.summary["total_trades"] > 0
    for trade in trades.itertuples():
        entry = fills[(fills["side"] == "buy") & (fills["time"] == trade.entry_time)]
        exit_ = fills[(fills["side"] == "sell") & (fills["time"] == trade.exit_time)]
        assert list(entry["price"]) == [trade.entry_price]
        assert list(exit_["price"]) == [trade.exit_price]
    assert str(result.equity.index.tz) == "America/New_York"
    assert result.equity.iloc[-1] == pytest.approx(100_000 + result.summary["total_pnl"], abs=0.01)


def test_plot_is_a_figure_of_equity_buy_and_hold_and_drawdown(tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    result = api.backtest("AAPL", "sma_cross", log=tmp_path / "t.db", **WINDOW)
    fig = result.plot()
    assert isinstance(fig, Figure)
    top, bottom = fig.axes
    curves = {line.get_label(): line for line in top.get_lines()}
    assert set(curves) == {"sma_cross (net of costs)", "buy & hold"}
    assert list(curves["sma_cross (net of costs)"].get_ydata()) == list(result.equity)
    assert curves["buy & hold"].get_ydata()[0] == pytest.approx(100_000)
    assert bottom.get_ylabel() == "drawdown"
    assert [line.get_label() for line in bottom.get_lines()] == ["strategy", "buy & hold"]


def test_a_strategy_subclass_runs_by_its_own_name(tmp_path: Path) -> None:
    class SlowCross(SmaCross):
        name = "slow_cross_test"
        summary = "sma_cross under another name"

    mine = api.backtest(
        "AAPL", SlowCross(SmaCross.Params(short=10, long=30)), log=tmp_path / "t.db", **WINDOW
    )
    builtin = api.backtest(
        "AAPL", "sma_cross", params={"short": 10, "long": 30}, log=tmp_path / "t.db", **WINDOW
    )
    assert mine.summary["strategy"] == "slow_cross_test"
    assert mine.summary["trades"] == builtin.summary["trades"]


def test_replay_and_runs_read_the_log_back(tmp_path: Path) -> None:
    result = api.backtest("AAPL", log=tmp_path / "t.db", **WINDOW)
    assert api.replay(result.run_id, log=tmp_path / "t.db").summary == result.summary
    assert api.replay(result, rerun=True)["identical"] is True
    assert list(api.runs(log=tmp_path / "t.db").index) == [result.run_id]


@pytest.mark.parametrize(
    ("arguments", "needle"),
    [
        ({"start": "2004-13-01"}, "start expects a date"),
        ({"start": "2006-01-01", "end": "2005-01-01"}, "start 2006-01-01 is after end"),
        ({"params": {"short": "ten"}}, "short"),
        ({"strategy": "no_such_strategy"}, "unknown strategy 'no_such_strategy'"),
        ({"fee_bps": -5}, "fee_bps must be between"),
        ({"data": 42}, "data must be"),
        ({"data": {"AAPL": _aapl_bars()}}, "pass tz="),
        ({"cash": 0}, "cash must be positive"),
    ],
)
def test_bad_arguments_raise_one_config_error_and_log_nothing(
    tmp_path: Path, arguments: dict, needle: str
) -> None:
    log = tmp_path / "t.db"
    api.backtest("AAPL", log=log, **WINDOW)
    before = _log_rows(log)
    call = {"data": "AAPL", "strategy": "sma_cross", **WINDOW, **arguments}
    with pytest.raises(api.ConfigError, match=re.escape(needle)) as caught:
        api.backtest(call.pop("data"), call.pop("strategy"), log=log, **call)
    assert isinstance(caught.value, ValueError)
    frames = [entry.path for entry in caught.traceback]
    assert all("/events/" not in str(f) and "/store/" not in str(f) for f in frames), frames
    assert "--" not in str(caught.value)  # the API's words, not the command's options
    assert _log_rows(log) == before


def test_readme_python_example_runs(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Use from Python", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip(), "the example prints what it shows"


def test_an_unknown_symbol_is_a_value_error_naming_it_and_logs_nothing(tmp_path: Path) -> None:
    log = tmp_path / "t.db"
    api.backtest("AAPL", log=log, **WINDOW)
    before = _log_rows(log)
    with pytest.raises(ValueError, match="unknown symbol 'NOPE'") as caught:
        api.backtest("NOPE", log=log)
    assert [Path(entry.path).name for entry in caught.traceback] == ["test_api.py", "boundary.py"]
    assert _log_rows(log) == before


def test_a_lone_dataframe_trades_under_its_symbol_attribute(tmp_path: Path) -> None:
    bars = _aapl_bars()
    bars.attrs["symbol"] = "xyz"
    result = api.backtest(bars, tz="America/New_York", log=tmp_path / "t.db", **WINDOW)
    assert result.summary["symbols"] == ["XYZ"]
    assert set(result.trades["symbol"]) == {"XYZ"}


def test_a_result_shows_its_headline_numbers_in_a_notebook(tmp_path: Path) -> None:
    result = api.backtest("AAPL", log=tmp_path / "t.db", **WINDOW)
    assert result.run_id in repr(result) and "total_trades=" in repr(result)
    page = result._repr_html_()
    assert result.run_id in page and "<table>" in page and "sharpe" in page


def test_montecarlo_summary_equals_the_cli_json(ray_session: None, tape: TapeRunner, tmp_path: Path) -> None:
    result = api.backtest("AAPL", log=tmp_path / "tape.db", **WINDOW)  # the log the command reads
    cli = _cli_json(tape, "montecarlo", result.run_id, "--n", "500", "--seed", "3", "--workers", "1")
    job = api.montecarlo(result, n=500, seed=3, charts=tmp_path / "charts")
    assert job.summary == cli
    assert list(job.table.index) == ["final_return_pct", "max_drawdown_pct"]


def test_check_returns_one_row_a_check_and_passes_a_built_in() -> None:
    from tape.events.strategy_checks import CHECKS

    table = api.check("sma_cross", symbols=["AAPL"])
    assert list(table.index) == list(CHECKS)
    assert table["passed"].all()


@pytest.mark.parametrize("job", [api.optimize, api.walkforward, api.validate])
def test_a_job_refuses_a_class_its_ray_workers_cannot_load_and_logs_nothing(job, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    class LocalCross(SmaCross):  # defined in a function: no file or module names it
        name = "local_cross_test"

    log = tmp_path / "t.db"
    with pytest.raises(api.ConfigError, match="cannot see a class defined in a notebook"):
        job("AAPL", LocalCross(SmaCross.Params()), log=log, **WINDOW)
    assert not log.exists() or _log_rows(log) == 0


def test_a_notebooks_result_does_not_hold_the_runs_events_in_memory(tmp_path: Path) -> None:
    result = api.backtest("AAPL", log=tmp_path / "t.db", **WINDOW)
    assert result.outcome.events == ()  # the command keeps them only to write its HTML page
    assert len(result.events) == _log_rows(tmp_path / "t.db")  # read back from the log when asked
